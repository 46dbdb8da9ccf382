package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/elastic/go-elasticsearch/v7"
)

// ES is a running single-node Elasticsearch 7.17 server, started by
// eslauncher/Launcher.java from the Maven Central jars.
type ES struct {
	URL      string // http://127.0.0.1:PORT
	Port     int
	RepoRoot string // path.repo: every fs repository location must be below it
	Dir      string // node home (data, logs) and elasticsearch.log
	proc     *Proc
}

// NewClient returns a go-elasticsearch client for the node.
func (e *ES) NewClient() (*elasticsearch.Client, error) {
	return elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{e.URL}})
}

// Client returns a go-elasticsearch client for the node.
func (e *ES) Client(t testing.TB) *elasticsearch.Client {
	t.Helper()
	c, err := e.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Stop stops the node.
func (e *ES) Stop() { e.proc.Stop() }

// Pid is the node's (JVM's) process id.
func (e *ES) Pid() int { return e.proc.Pid }

var sharedES struct {
	once sync.Once
	es   *ES
	err  error
}

// Elasticsearch returns the package's shared node, started on first use and
// stopped by Main. Its path.repo is RepoRoot: make repository directories
// below it, one per test. Tests share the node, so each uses its own index
// and repository names.
func Elasticsearch(t testing.TB) *ES {
	t.Helper()
	sharedES.once.Do(func() {
		dir, err := os.MkdirTemp("", "bcp-es-")
		if err != nil {
			sharedES.err = err
			return
		}
		sharedES.es, sharedES.err = StartElasticsearch(bg(), dir, filepath.Join(dir, "repo"), StartOptions{})
		onShutdown(func() {
			if sharedES.es != nil {
				sharedES.es.Stop()
			}
			os.RemoveAll(dir)
		})
	})
	need(t, "elasticsearch", sharedES.err)
	return sharedES.es
}

// LauncherDir is the directory of Launcher.java, lib/ (the jars) and
// classes/ (the compiled launcher). BCP_TESTENV_ESLAUNCHER overrides it.
func LauncherDir() string {
	if d := os.Getenv("BCP_TESTENV_ESLAUNCHER"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "eslauncher")
}

// StartElasticsearch starts a node in dir with path.repo = repo.
func StartElasticsearch(ctx context.Context, dir, repo string, o StartOptions) (*ES, error) {
	return retryPorts(func() (*ES, error) { return startElasticsearchOnce(ctx, dir, repo, o) })
}

func startElasticsearchOnce(ctx context.Context, dir, repo string, o StartOptions) (*ES, error) {
	java, err := lookBin("openjdk-17-jre-headless", "java")
	if err != nil {
		return nil, err
	}
	ld := LauncherDir()
	if _, err := os.Stat(filepath.Join(ld, "lib", ".complete")); err != nil {
		return nil, &missingError{what: "Elasticsearch jars in " + filepath.Join(ld, "lib"),
			how: "run scripts/setup.sh (it fetches them from Maven Central with mvn)"}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if repo, err = filepath.Abs(repo); err != nil {
		return nil, err
	}
	for _, d := range []string{dir, repo, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	tport, err := freePort()
	if err != nil {
		return nil, err
	}
	heap := os.Getenv("BCP_TESTENV_ES_HEAP")
	if heap == "" {
		heap = "512m"
	}
	cluster := o.Name
	if cluster == "" {
		cluster = "testenv"
	}
	cp := filepath.Join(ld, "lib", "*")
	main := "Launcher"
	cls := filepath.Join(ld, "classes", "Launcher.class")
	src := filepath.Join(ld, "Launcher.java")
	if ci, err := os.Stat(cls); err == nil && !newer(src, ci.ModTime().UnixNano()) {
		cp += string(os.PathListSeparator) + filepath.Join(ld, "classes")
	} else {
		main = src // single-file source launch (JDK 11+): compiles in memory
	}
	args := []string{
		"-Xms" + heap, "-Xmx" + heap,
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m",
		"-Djava.io.tmpdir=" + filepath.Join(dir, "tmp"),
		"-Djava.awt.headless=true",
		"-Dfile.encoding=UTF-8",
		"-Djna.nosys=true",
		"-Dlog4j.shutdownHookEnabled=false",
		"-Dlog4j2.disable.jmx=true",
		"-Dlog4j2.formatMsgNoLookups=true",
		"-Dio.netty.noKeySetOptimization=true",
		"-Dio.netty.recycler.maxCapacityPerThread=0",
		"-Dio.netty.allocator.numDirectArenas=0",
		"-Des.set.netty.runtime.available.processors=false",
		"-Djava.locale.providers=SPI,COMPAT",
		"-cp", cp, main,
		"--home", filepath.Join(dir, "home"),
		"--repo", repo,
		"--http-port", strconv.Itoa(httpPort),
		"--transport-port", strconv.Itoa(tport),
		"--cluster", cluster,
		"--name", cluster + "-1",
	}
	if !o.Detached {
		args = append(args, "--watch-stdin")
	}
	p, err := startProc(procSpec{Name: "elasticsearch", Path: java, Args: args, Dir: dir,
		Detached: o.Detached, Stdin: !o.Detached})
	if err != nil {
		return nil, err
	}
	e := &ES{URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), Port: httpPort, RepoRoot: repo, Dir: dir, proc: p}
	err = p.waitReady(ctx, httpPort, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/_cluster/health?wait_for_status=yellow&timeout=2s", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("cluster health: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.Stop()
		return nil, err
	}
	return e, nil
}

func newer(path string, than int64) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.ModTime().UnixNano() > than
}
