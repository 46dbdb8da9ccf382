package metrics

import (
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Stage is one stage of a run.
type Stage struct {
	Name     string
	Duration time.Duration
	Bytes    int64
}

// Run is what a run reports.
type Run struct {
	Program string // metric prefix bcp_<program>_
	Channel string // label
	Time    time.Time
	Success bool
	Stages  []Stage
	// Gauges are values of the program's state, written as they are
	// (bcp_<program>_<name>), e.g. restore's recovery point age.
	Gauges []Gauge
}

// Gauge is one value of a program's state.
type Gauge struct {
	Name  string // without the bcp_<program>_ prefix
	Help  string
	Value float64
}

// Write writes the textfile at path for a run that just ended (its
// directory must exist).
func Write(path string, r Run) error { return write(path, r, false) }

// WriteState writes r.Gauges between runs: what the file says about the
// last run is kept as it is (a program that has not run yet writes no
// run metrics); r.Time and r.Success are not used.
func WriteState(path string, r Run) error { return write(path, r, true) }

func write(path string, r Run, noRun bool) error {
	p := "bcp_" + r.Program + "_"
	lbl := prometheus.Labels{"channel": r.Channel}
	reg := prometheus.NewRegistry()
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: p + name, Help: help, ConstLabels: lbl})
		reg.MustRegister(g)
		return g
	}
	for _, g := range r.Gauges {
		gauge(g.Name, g.Help).Set(g.Value)
	}
	dur := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: p + "stage_duration_seconds", Help: "Duration of each stage of the last successful run.", ConstLabels: lbl}, []string{"stage"})
	byt := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: p + "stage_bytes", Help: "Bytes each stage of the last successful run wrote or recorded.", ConstLabels: lbl}, []string{"stage"})
	reg.MustRegister(dur, byt)
	// Each run value: this run's, or (noRun, or a failed run's success
	// values) the file's; without one in the file, 0 after a run (never
	// succeeded) and nothing between runs (never ran).
	old, _ := readOld(path)
	runValue := func(name, help string, v float64, now bool) {
		if !now {
			o, ok := old[p+name]
			if !ok && noRun {
				return
			}
			v = o[""]
		}
		gauge(name, help).Set(v)
	}
	ok := 0.0
	if r.Success {
		ok = 1
	}
	runValue("last_run_timestamp_seconds", "Unix time the last run ended.", float64(r.Time.Unix()), !noRun)
	runValue("last_run_success", "1 if the last run succeeded, else 0.", ok, !noRun)
	runValue("last_success_timestamp_seconds", "Unix time the last successful run ended.", float64(r.Time.Unix()), !noRun && r.Success)
	if r.Success && !noRun {
		for _, s := range r.Stages {
			dur.WithLabelValues(s.Name).Set(s.Duration.Seconds())
			byt.WithLabelValues(s.Name).Set(float64(s.Bytes))
		}
	} else {
		for st, v := range old[p+"stage_duration_seconds"] {
			dur.WithLabelValues(st).Set(v)
		}
		for st, v := range old[p+"stage_bytes"] {
			byt.WithLabelValues(st).Set(v)
		}
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("write metrics textfile %s: %w", path, err)
	}
	return nil
}

// readOld returns metric name -> stage label ("" if none) -> value.
func readOld(path string) (map[string]map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]float64{}
	for name, fam := range fams {
		m := map[string]float64{}
		for _, mt := range fam.GetMetric() {
			m[stageOf(mt)] = mt.GetGauge().GetValue()
		}
		out[name] = m
	}
	return out, nil
}

func stageOf(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "stage" {
			return l.GetValue()
		}
	}
	return ""
}
