// Launcher starts one genuine single-node Elasticsearch 7.17 server from the
// jars in lib/ (Maven Central), for the project's test world. It runs the
// same server code as a distribution (snapshot/restore included) but skips
// the bootstrap checks, which an embedded node does not run.
//
// Usage: java -cp 'lib/*:classes' Launcher --home DIR --repo DIR
//            --http-port N --transport-port N [--name NAME] [--cluster NAME]
//            [--watch-stdin] [--seeds HOST:PORT,... --masters NAME,...]
//
// With --seeds the node joins a cluster of several nodes: discovery.seed_hosts
// lists every node's transport address and cluster.initial_master_nodes
// names the master-eligible nodes for the first bootstrap (ignored once the
// cluster formed). Without it the node is a single-node cluster.
//
// With --watch-stdin the node stops when standard input closes, so that a
// test binary that dies never leaves a node behind. It also stops on SIGTERM.
// When the node is up it writes "ready" into HOME/ready.
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.transport.Netty4Plugin;

public class Launcher {
    public static void main(String[] args) throws Exception {
        Map<String, String> a = new HashMap<>();
        boolean watchStdin = false;
        for (int i = 0; i < args.length; i++) {
            String k = args[i];
            if (k.equals("--watch-stdin")) {
                watchStdin = true;
                continue;
            }
            if (!k.startsWith("--") || i + 1 >= args.length) {
                System.err.println("launcher: bad argument " + k);
                System.exit(2);
            }
            a.put(k.substring(2), args[++i]);
        }
        for (String req : new String[] {"home", "repo", "http-port", "transport-port"}) {
            if (!a.containsKey(req)) {
                System.err.println("launcher: missing --" + req);
                System.exit(2);
            }
        }
        Path home = Paths.get(a.get("home")).toAbsolutePath();
        Path repo = Paths.get(a.get("repo")).toAbsolutePath();
        String name = a.getOrDefault("name", "node-1");
        for (String d : new String[] {"data", "logs", "config", "plugins", "modules"}) {
            Files.createDirectories(home.resolve(d));
        }
        Files.createDirectories(repo);
        Files.deleteIfExists(home.resolve("ready"));

        Settings.Builder b = Settings.builder()
            .put("cluster.name", a.getOrDefault("cluster", "bcp-test"))
            .put("node.name", name)
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .putList("path.repo", Collections.singletonList(repo.toString()))
            .put("network.host", "127.0.0.1")
            .put("http.port", a.get("http-port"))
            .put("transport.port", a.get("transport-port"))
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true);
        if (a.containsKey("seeds")) {
            b.putList("discovery.seed_hosts", java.util.Arrays.asList(a.get("seeds").split(",")));
            b.putList("cluster.initial_master_nodes", java.util.Arrays.asList(a.getOrDefault("masters", name).split(",")));
        } else {
            b.put("discovery.type", "single-node");
        }
        Settings settings = b.build();

        LogConfigurator.registerErrorListener();
        LogConfigurator.configureWithoutConfig(settings);
        LogConfigurator.setNodeName(name);

        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), home.resolve("config"), () -> name);
        Node node = new Node(env, Collections.singletonList(Netty4Plugin.class), true) {};

        CountDownLatch stopped = new CountDownLatch(1);
        Runnable stop = () -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            }
            stopped.countDown();
        };
        Runtime.getRuntime().addShutdownHook(new Thread(stop, "launcher-shutdown"));

        if (watchStdin) {
            Thread w = new Thread(() -> {
                try {
                    InputStream in = System.in;
                    byte[] buf = new byte[256];
                    while (in.read(buf) >= 0) {
                        // ignore input; wait for EOF
                    }
                } catch (Exception e) {
                    // stdin broken: treat as closed
                }
                System.out.println("launcher: stdin closed, stopping");
                System.exit(0); // runs the shutdown hook
            }, "launcher-stdin");
            w.setDaemon(true);
            w.start();
        }
        node.start();
        Files.write(home.resolve("ready"), ("ready " + a.get("http-port") + "\n").getBytes(StandardCharsets.UTF_8));
        System.out.println("launcher: node " + name + " started, http 127.0.0.1:" + a.get("http-port") + ", path.repo " + repo);
        System.out.flush();

        // Elasticsearch's threads are daemons: keep main alive until stopped.
        stopped.await();
    }
}
