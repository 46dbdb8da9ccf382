package metrics

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"

	"gopkg.in/yaml.v3"
)

// RuleFile is a Prometheus rule file (rule_files: in prometheus.yml), as
// examples/prometheus/bcp-alerts.yml is written.
type RuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rule is one alerting rule.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// bcpMetric matches the names of the metrics the programs write in a
// PromQL expression, once its strings (label values) are taken out.
var (
	bcpMetric   = regexp.MustCompile(`\bbcp_[a-z0-9_]+\b`)
	promQLQuote = regexp.MustCompile(`"(\\.|[^"\\])*"|'(\\.|[^'\\])*'|` + "`[^`]*`")
)

// Metrics are the bcp_* metric names the rule's expression uses.
func (r Rule) Metrics() []string {
	names := bcpMetric.FindAllString(promQLQuote.ReplaceAllString(r.Expr, `""`), -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// ReadRules reads a rule file strictly (an unknown key is an error, as
// Prometheus refuses it) and checks that every rule is an alert with an
// expression, a severity label and a summary.
func ReadRules(path string) (*RuleFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f RuleFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("rule file %s: %w", path, err)
	}
	if len(f.Groups) == 0 {
		return nil, fmt.Errorf("rule file %s: no groups", path)
	}
	for _, g := range f.Groups {
		for i, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				return nil, fmt.Errorf("rule file %s: group %s, rule %d (%q): want alert, expr, labels.severity and annotations.summary", path, g.Name, i+1, r.Alert)
			}
		}
	}
	return &f, nil
}

// Metrics are the bcp_* metric names the file's rules use, with prefix
// (e.g. "bcp_restore_"), each with the alerts that use it.
func (f *RuleFile) Metrics(prefix string) map[string][]string {
	out := map[string][]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			for _, m := range r.Metrics() {
				if len(m) >= len(prefix) && m[:len(prefix)] == prefix {
					out[m] = append(out[m], r.Alert)
				}
			}
		}
	}
	return out
}

// MissingIn returns the metrics with prefix that the rules use and the
// textfile at path does not hold, each with the alerts that use it.
func (f *RuleFile) MissingIn(path, prefix string) (map[string][]string, error) {
	have, err := readOld(path)
	if err != nil {
		return nil, fmt.Errorf("metrics textfile %s: %w", path, err)
	}
	missing := map[string][]string{}
	for m, alerts := range f.Metrics(prefix) {
		if _, ok := have[m]; !ok {
			missing[m] = alerts
		}
	}
	return missing, nil
}
