// Package metrics writes the Prometheus textfile that node_exporter's
// textfile collector reads (--collector.textfile.directory): for a program,
// the time of the last run and of the last success, whether the last run
// succeeded, and per stage the duration and bytes of the last successful run.
// The file is written atomically by prometheus.WriteToTextfile (temp file +
// rename), so the collector never reads half a file.
//
// A failed run must not erase when the last success was, so Write carries
// the previous success values over from the existing file when the current
// run failed.
//
// A program may also write gauges of its state (Run.Gauges, e.g. restore's
// recovery point age and sets waiting): with each run, and between runs
// with WriteState, which keeps the file's last-run values as they are.
// The metric names the programs write are the ones examples/prometheus
// rules may use; each program's tests check that.
package metrics
