package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
)

// Link describes a link between two data centres: its round trip time and
// bandwidth (each direction). Zero values mean none (no added delay, no
// limit).
type Link struct {
	RTT       time.Duration
	Jitter    time.Duration // +- on each direction's delay
	Bandwidth int64         // bytes per second, each direction; 0 unlimited
}

// The two profiles of bench/wan.md.
var (
	// FarLink: 50 ms round trip, 100 Mbit/s.
	FarLink = Link{RTT: 50 * time.Millisecond, Bandwidth: 100e6 / 8}
	// NearLink: 10 ms round trip, 1 Gbit/s.
	NearLink = Link{RTT: 10 * time.Millisecond, Bandwidth: 1e9 / 8}
)

func (l Link) String() string {
	bw := "unlimited"
	if l.Bandwidth > 0 {
		bw = fmt.Sprintf("%g Mbit/s", float64(l.Bandwidth)*8/1e6)
	}
	return fmt.Sprintf("%v RTT, %s", l.RTT, bw)
}

// WAN is a link of another data centre in front of a loopback server: an
// in-process toxiproxy (github.com/Shopify/toxiproxy) listening on a free
// loopback port, which delays each direction by half the Link's RTT,
// limits its bandwidth, and on demand stalls (no byte passes, the
// connections stay open) or resets every connection. It stands between a
// client and a real server (sshd); neither knows.
//
// The proxy ends TCP on each side on loopback, so the kernel's TCP window
// is not what limits a connection through it; everything above TCP that
// waits for an answer - SSH channel windows, SFTP requests, the transfer
// helper's replies, rsync's own exchanges - pays the full round trip, and
// the bandwidth is shared by everything on the link, as on a real one
// (sharedBandwidth: one schedule for all connections in a direction).
// Linux's default TCP buffers (tcp_rmem max 6 MiB) hold the
// bandwidth-delay products measured here (0.6 and 1.25 MB), so a real link
// of the same figures is limited by the same layers.
type WAN struct {
	Host  string // 127.0.0.1
	Port  int
	Link  Link
	proxy *toxiproxy.Proxy

	mu     sync.Mutex
	broken string           // type of the fault toxics added (Stall, Reset), "" none
	up     *sharedBandwidth // client to server; nil without a bandwidth
}

// Sent is how many bytes the link has carried from the clients to the
// server so far (0 without a Bandwidth): what a sender's rate looks like
// on the wire, SSH's framing included.
func (w *WAN) Sent() int64 {
	if w.up == nil {
		return 0
	}
	return w.up.passed.Load()
}

var zerologOnce sync.Once

// StartWAN starts a proxy on a free loopback port in front of upstream
// (host:port on loopback). Stop it with Stop.
func StartWAN(upstream string, l Link) (*WAN, error) {
	host, _, err := net.SplitHostPort(upstream)
	if err != nil {
		return nil, fmt.Errorf("wan: upstream %q: %w", upstream, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("wan: upstream %q is not a loopback address: the test world never leaves this host", upstream)
	}
	// toxiproxy's toxics log through zerolog's global logger.
	zerologOnce.Do(func() { zerolog.SetGlobalLevel(zerolog.Disabled) })
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	return retryPorts(func() (*WAN, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		w := &WAN{Host: "127.0.0.1", Port: port, Link: l}
		w.proxy = toxiproxy.NewProxy(srv, "wan", w.Addr(), upstream)
		if err := w.proxy.Start(); err != nil {
			return nil, fmt.Errorf("wan: listen on %s: %w", w.Addr(), err)
		}
		if err := w.shape(l); err != nil {
			w.proxy.Stop()
			return nil, err
		}
		return w, nil
	})
}

// NewWAN starts a proxy for one test, stopped when the test ends.
func NewWAN(t testing.TB, upstream string, l Link) *WAN {
	t.Helper()
	w, err := StartWAN(upstream, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// OverWAN returns this server as seen across a WAN of the given shape: a
// copy of s whose Host and Port are a proxy's in front of it and whose
// KnownHosts file names the proxy's address with the server's host key (so
// the host key is checked as for the server itself). The proxy stops when
// the test ends.
func (s *SSHServer) OverWAN(t testing.TB, l Link) (*SSHServer, *WAN) {
	t.Helper()
	w := NewWAN(t, s.Addr(), l)
	c := *s
	c.Host, c.Port = w.Host, w.Port
	c.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	kh := fmt.Sprintf("[%s]:%d %s", w.Host, w.Port, ssh.MarshalAuthorizedKey(s.HostKey))
	if err := os.WriteFile(c.KnownHosts, []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	return &c, w
}

// Addr is host:port of the proxy.
func (w *WAN) Addr() string { return net.JoinHostPort(w.Host, strconv.Itoa(w.Port)) }

// Stop closes the proxy and every connection through it.
func (w *WAN) Stop() { w.proxy.Stop() }

// Reshape gives a link started without delay or limit (Link{}) its shape
// from now on, for the connections opened after it: a destination is
// filled through the proxy at loopback speed, then a change is measured
// across the far link with the same address (and so the same host key
// entry and the same push cache).
func (w *WAN) Reshape(l Link) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.Link != (Link{}) {
		return fmt.Errorf("wan %s: already shaped as %s", w.Addr(), w.Link)
	}
	if err := w.shape(l); err != nil {
		return err
	}
	w.Link = l
	return nil
}

func (w *WAN) shape(l Link) error {
	for _, dir := range []string{"upstream", "downstream"} {
		if l.RTT > 0 || l.Jitter > 0 {
			if err := w.add(fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d,"jitter":%d}}`,
				dir, dir, (l.RTT / 2).Milliseconds(), l.Jitter.Milliseconds())); err != nil {
				return err
			}
		}
		if l.Bandwidth > 0 {
			js := fmt.Sprintf(`{"name":"bandwidth_%s","type":%q,"stream":%q,"attributes":{"rate":%d}}`,
				dir, sharedBandwidthType, dir, l.Bandwidth)
			tw, err := w.proxy.Toxics.AddToxicJson(strings.NewReader(js))
			if err != nil {
				return fmt.Errorf("wan %s: add toxic %s: %w", w.Addr(), js, err)
			}
			if dir == "upstream" {
				w.up = tw.Toxic.(*sharedBandwidth)
			}
		}
	}
	return nil
}

// sharedBandwidthType is the toxic that limits a direction of the link as
// a whole. toxiproxy's own "bandwidth" toxic paces each connection on its
// own: four SSH connections would then have four times the link's
// bandwidth between them, which no real link gives.
const sharedBandwidthType = "bcp_shared_bandwidth"

func init() { toxics.Register(sharedBandwidthType, new(sharedBandwidth)) }

// sharedBandwidth passes data at Rate bytes per second in total over every
// connection through the proxy in its direction: each piece of at most
// linkPiece bytes waits for its turn on the link (one schedule for all
// connections), so connections share the link as on a real one.
type sharedBandwidth struct {
	Rate int64 `json:"rate"` // bytes per second

	mu     sync.Mutex
	free   time.Time    // when the link has sent everything scheduled so far
	passed atomic.Int64 // bytes passed on
}

// linkPiece is what goes out at once: small enough that connections
// interleave (1.3 ms at 100 Mbit/s), large enough for the timers.
const linkPiece = 16 << 10

// linkSlack is how late a sender may come back for its next piece and
// still be scheduled right after the last one: timers wake a little late,
// and without it a single connection would lose that much per piece. A
// link idle for longer starts afresh (no burst is saved up).
const linkSlack = 10 * time.Millisecond

// reserve schedules n bytes on the link and returns when they have passed.
func (t *sharedBandwidth) reserve(n int) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	start := time.Now()
	if start.Sub(t.free) < linkSlack {
		start = t.free // busy, or just woken late: no time lost
	}
	t.free = start.Add(time.Duration(int64(n) * int64(time.Second) / max(t.Rate, 1)))
	return t.free
}

func (t *sharedBandwidth) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case p := <-stub.Input:
			if p == nil {
				stub.Close()
				return
			}
			for len(p.Data) > 0 {
				n := min(len(p.Data), linkPiece)
				timer := time.NewTimer(time.Until(t.reserve(n)))
				select {
				case <-timer.C:
				case <-stub.Interrupt:
					// Replaced (a fault added or healed): pass on what is
					// left, drop nothing.
					timer.Stop()
					_ = stub.WriteOutput(p, 5*time.Second)
					return
				}
				stub.Output <- &stream.StreamChunk{Data: p.Data[:n], Timestamp: p.Timestamp}
				t.passed.Add(int64(n))
				p.Data = p.Data[n:]
			}
		}
	}
}

func (w *WAN) add(js string) error {
	if _, err := w.proxy.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		return fmt.Errorf("wan %s: add toxic %s: %w", w.Addr(), js, err)
	}
	return nil
}

// Stall makes the link silent: from now on no byte passes in either
// direction (what was sent is dropped), and the connections stay open -
// a link that died without telling anyone. Heal ends it for new
// connections.
func (w *WAN) Stall() error { return w.fault("timeout", `{"timeout":0}`) }

// Reset resets (TCP RST) every connection through the proxy at the next
// byte it carries, in either direction. Heal ends it for new connections.
func (w *WAN) Reset() error { return w.fault("reset_peer", `{"timeout":0}`) }

func (w *WAN) fault(typ, attrs string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken != "" {
		return fmt.Errorf("wan %s: already %s", w.Addr(), w.broken)
	}
	for _, dir := range []string{"upstream", "downstream"} {
		if err := w.add(fmt.Sprintf(`{"name":"fault_%s","type":%q,"stream":%q,"attributes":%s}`, dir, typ, dir, attrs)); err != nil {
			return err
		}
	}
	w.broken = typ
	return nil
}

// Heal removes the fault; the connections it broke stay broken.
func (w *WAN) Heal() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken == "" {
		return nil
	}
	for _, dir := range []string{"upstream", "downstream"} {
		if err := w.proxy.Toxics.RemoveToxic(context.Background(), "fault_"+dir); err != nil {
			return fmt.Errorf("wan %s: heal: %w", w.Addr(), err)
		}
	}
	w.broken = ""
	return nil
}
