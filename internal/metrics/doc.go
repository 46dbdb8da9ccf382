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
package metrics
