package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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
	Name     string // node.name
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
			_ = os.RemoveAll(dir)
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
	return retryPorts(func() (*ES, error) {
		httpPort, err := freePort()
		if err != nil {
			return nil, err
		}
		tport, err := freePort()
		if err != nil {
			return nil, err
		}
		cluster := o.Name
		if cluster == "" {
			cluster = "testenv"
		}
		n := esNode{name: cluster + "-1", cluster: cluster, httpPort: httpPort, transportPort: tport, heap: os.Getenv("BCP_TESTENV_ES_HEAP")}
		e, err := startESNode(dir, repo, n, o)
		if err != nil {
			return nil, err
		}
		if err := e.waitHealth(ctx, "yellow", 1); err != nil {
			e.Stop()
			return nil, err
		}
		return e, nil
	})
}

// esNode is one node's part of a cluster.
type esNode struct {
	name, cluster           string
	httpPort, transportPort int
	seeds, masters          []string // several nodes: every transport address, the master-eligible names
	heap                    string   // "" = 512m
}

// StartESCluster starts n nodes of one Elasticsearch cluster (cluster
// name o.Name) in dir/node-1 .. dir/node-N, every node master-eligible and
// a data node, every node's path.repo = repo (a shared-filesystem
// repository must be the same directory on every node). The nodes start
// in parallel; it returns once the cluster has n nodes and is green. Heap
// per node: BCP_TESTENV_ES_CLUSTER_HEAP, default 256m.
func StartESCluster(ctx context.Context, dir, repo string, n int, o StartOptions) ([]*ES, error) {
	return retryPorts(func() ([]*ES, error) { return startESClusterOnce(ctx, dir, repo, n, o) })
}

func startESClusterOnce(ctx context.Context, dir, repo string, n int, o StartOptions) ([]*ES, error) {
	cluster := o.Name
	if cluster == "" {
		cluster = "testenv"
	}
	heap := os.Getenv("BCP_TESTENV_ES_CLUSTER_HEAP")
	if heap == "" {
		heap = "256m"
	}
	nodes := make([]esNode, n)
	var seeds, masters []string
	for i := range nodes {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		tp, err := freePort()
		if err != nil {
			return nil, err
		}
		nodes[i] = esNode{name: fmt.Sprintf("%s-%d", cluster, i+1), cluster: cluster, httpPort: hp, transportPort: tp, heap: heap}
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", tp))
		masters = append(masters, nodes[i].name)
	}
	es := make([]*ES, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		nodes[i].seeds, nodes[i].masters = seeds, masters
		wg.Add(1)
		go func() {
			defer wg.Done()
			es[i], errs[i] = startESNode(filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), repo, nodes[i], o)
		}()
	}
	wg.Wait()
	stopAll := func() {
		for _, e := range es {
			if e != nil {
				e.Stop()
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		stopAll()
		return nil, err
	}
	for _, e := range es {
		if err := e.waitHealth(ctx, "green", n); err != nil {
			stopAll()
			return nil, err
		}
	}
	return es, nil
}

// waitHealth waits until the node answers with the cluster at least
// status and nodes nodes.
func (e *ES) waitHealth(ctx context.Context, status string, nodes int) error {
	return e.proc.waitReady(ctx, e.Port, func(ctx context.Context) error {
		url := fmt.Sprintf("%s/_cluster/health?wait_for_status=%s&wait_for_nodes=%d&timeout=2s", e.URL, status, nodes)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("cluster health (want %s, %d nodes): %s", status, nodes, resp.Status)
		}
		return nil
	})
}

// startESNode starts one node; it does not wait for it.
func startESNode(dir, repo string, n esNode, o StartOptions) (*ES, error) {
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
	heap := n.heap
	if heap == "" {
		heap = "512m"
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
		"--http-port", strconv.Itoa(n.httpPort),
		"--transport-port", strconv.Itoa(n.transportPort),
		"--cluster", n.cluster,
		"--name", n.name,
	}
	if len(n.seeds) > 0 {
		args = append(args, "--seeds", strings.Join(n.seeds, ","), "--masters", strings.Join(n.masters, ","))
	}
	if !o.Detached {
		args = append(args, "--watch-stdin")
	}
	p, err := startProc(procSpec{Name: "elasticsearch", Path: java, Args: args, Dir: dir,
		Detached: o.Detached, Stdin: !o.Detached})
	if err != nil {
		return nil, err
	}
	return &ES{URL: fmt.Sprintf("http://127.0.0.1:%d", n.httpPort), Port: n.httpPort, RepoRoot: repo, Dir: dir, Name: n.name, proc: p}, nil
}

func newer(path string, than int64) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.ModTime().UnixNano() > than
}
