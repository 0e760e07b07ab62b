/*  kit_cluster.c - the test kit's clusters: a leader and its followers as
    local qkv-node processes on fresh loopback ports, or the base URLs of a
    cluster someone else runs (env QKV_TEST_NODES, leader first).
*/
#include "kit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_START_TIMEOUT_MS 30000
#define S_STOP_TIMEOUT_MS 10000

int kit_cluster_from_env(kit_cluster_t *cluster, size_t expected) {
    memset(cluster, 0, sizeof *cluster);
    const char *list = getenv("QKV_TEST_NODES");
    if (!list || !*list)
        return 0;
    char *copy = strdup(list);
    char *save = NULL;
    for (char *url = strtok_r(copy, ", ", &save); url;
         url = strtok_r(NULL, ", ", &save)) {
        if (cluster->count == KIT_MAX_NODES)
            break;
        kit_node_t *node = &cluster->nodes[cluster->count];
        size_t len = strlen(url);
        while (len && url[len - 1] == '/')
            url[--len] = '\0';
        snprintf(node->url, sizeof node->url, "%s", url);
        if (cluster->count == 0)
            snprintf(node->name, sizeof node->name, "leader");
        else
            snprintf(node->name, sizeof node->name, "follower%zu",
                     cluster->count);
        cluster->count++;
    }
    free(copy);
    cluster->external = true;
    /* with elections any node may lead: the one whose /health says so
       goes first, as the suites expect */
    for (size_t i = 1; i < cluster->count; i++) {
        long status = 0;
        json_t *h = kit_qkv_health(cluster->nodes[i].url, &status);
        bool leads = !strcmp(
            kit_json_str(h, "role") ? kit_json_str(h, "role") : "", "leader");
        json_decref(h);
        if (!leads)
            continue;
        char url[sizeof cluster->nodes[0].url];
        memcpy(url, cluster->nodes[0].url, sizeof url);
        memcpy(cluster->nodes[0].url, cluster->nodes[i].url, sizeof url);
        memcpy(cluster->nodes[i].url, url, sizeof url);
        break;
    }
    if (expected && cluster->count != expected) {
        fprintf(stderr, "kit: QKV_TEST_NODES lists %zu URLs, expected %zu\n",
                cluster->count, expected);
        return -1;
    }
    return 1;
}

static int s_setup_follower(kit_node_t *node, size_t k, int leader_port,
                            const kit_cluster_opts_t *opts) {
    char name[32], port[16], repl[16], leader_url[64];
    int http = kit_free_port(), repl_port = kit_free_port();
    if (http < 0 || repl_port < 0)
        return -1;
    snprintf(name, sizeof name, "follower%zu", k);
    snprintf(port, sizeof port, "%d", http);
    snprintf(repl, sizeof repl, "%d", repl_port);
    snprintf(leader_url, sizeof leader_url, "http://127.0.0.1:%d", leader_port);
    kit_node_init(node, name, http, repl_port);
    int rc = kit_node_args(node, "--role", "follower", "--port", port,
                           "--repl-port", repl, "--node-id", name, NULL);
    if (rc == 0 && !opts->no_leader_url)
        rc = kit_node_args(node, "--leader-url", leader_url, NULL);
    return rc;
}

static int s_setup_leader(kit_cluster_t *cluster, int port,
                          const kit_cluster_opts_t *opts) {
    kit_node_t *node = &cluster->nodes[0];
    char text[32], followers[KIT_MAX_NODES * 32] = "";
    kit_node_init(node, "leader", port, 0);
    snprintf(text, sizeof text, "%d", port);
    int rc = kit_node_args(node, "--role", "leader", "--port", text, NULL);
    for (size_t i = 1; i < cluster->count; i++) {
        size_t used = strlen(followers);
        snprintf(followers + used, sizeof followers - used,
                 "%stcp://127.0.0.1:%d", i > 1 ? "," : "",
                 cluster->nodes[i].repl_port);
    }
    if (rc == 0 && cluster->count > 1)
        rc = kit_node_args(node, "--followers", followers, NULL);
    snprintf(text, sizeof text, "%d", opts->write_quorum);
    if (rc == 0 && opts->write_quorum >= 0)
        rc = kit_node_args(node, "--write-quorum", text, NULL);
    snprintf(text, sizeof text, "%d",
             opts->replication_timeout_ms ? opts->replication_timeout_ms
                                          : 5000);
    if (rc == 0)
        rc = kit_node_args(node, "--replication-timeout-ms", text, NULL);
    snprintf(text, sizeof text, "%d",
             opts->heartbeat_ms ? opts->heartbeat_ms : 50);
    if (rc == 0)
        rc = kit_node_args(node, "--heartbeat-ms", text, NULL);
    for (size_t i = 0; rc == 0 && opts->leader_args && opts->leader_args[i];
         i++)
        rc = kit_node_args(node, opts->leader_args[i], NULL);
    return rc;
}

/* Elections: every node knows every other through --peers. */
static int s_setup_peers(kit_cluster_t *cluster,
                         const kit_cluster_opts_t *opts) {
    static char peers[KIT_MAX_NODES * 256];
    peers[0] = '\0';
    for (size_t k = 0; k < cluster->count; k++) {
        char name[32];
        int http = kit_free_port(), repl = kit_free_port();
        if (http < 0 || repl < 0)
            return -1;
        snprintf(name, sizeof name, "node%zu", k);
        kit_node_init(&cluster->nodes[k], name, http, repl);
        size_t used = strlen(peers);
        snprintf(peers + used, sizeof peers - used,
                 "%s%s=tcp://127.0.0.1:%d|tcp://127.0.0.1:%d|"
                 "http://127.0.0.1:%d%s%s",
                 k ? "," : "", name, repl, cluster->nodes[k].client_port, http,
                 opts->peer_keys ? "|key=" : "",
                 opts->peer_keys ? opts->peer_keys[k] : "");
    }
    char quorum[16], timeout[16], heartbeat[16], election[16];
    snprintf(quorum, sizeof quorum, "%d",
             opts->write_quorum >= 0 ? opts->write_quorum : 1);
    snprintf(timeout, sizeof timeout, "%d",
             opts->replication_timeout_ms ? opts->replication_timeout_ms
                                          : 5000);
    snprintf(heartbeat, sizeof heartbeat, "%d",
             opts->heartbeat_ms ? opts->heartbeat_ms : 50);
    snprintf(election, sizeof election, "%d",
             opts->election_timeout_ms ? opts->election_timeout_ms : 500);
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < cluster->count; k++) {
        kit_node_t *node = &cluster->nodes[k];
        rc = kit_node_args(node, "--node-id", node->name, "--peers", peers,
                           "--write-quorum", quorum, "--replication-timeout-ms",
                           timeout, "--heartbeat-ms", heartbeat,
                           "--election-timeout-ms", election, NULL);
        if (rc == 0 && k == 0)
            rc = kit_node_args(node, "--role", "leader", NULL);
    }
    return rc;
}

int kit_cluster_leader(kit_cluster_t *cluster, int timeout_ms) {
    int64_t deadline = kit_now_ms() + timeout_ms;
    do {
        int leader = -1;
        bool agreed = true;
        char leader_id[128] = "";
        for (size_t i = 0; i < cluster->count && agreed; i++) {
            if (!cluster->external && !cluster->nodes[i].pid)
                continue;
            long status = 0;
            json_t *h = kit_qkv_health(cluster->nodes[i].url, &status);
            const char *role = json_string_value(json_object_get(h, "role"));
            const char *id = json_string_value(json_object_get(h, "leader_id"));
            if (!h || !role || !id || !*id) {
                agreed = false;
            } else if (!strcmp(role, "leader")) {
                agreed =
                    json_is_true(json_object_get(h, "serving")) && leader < 0;
                leader = (int)i;
            }
            if (agreed && !leader_id[0])
                snprintf(leader_id, sizeof leader_id, "%s", id);
            else if (agreed && strcmp(leader_id, id) != 0)
                agreed = false;
            json_decref(h);
        }
        if (agreed && leader >= 0)
            return leader;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    } while (kit_now_ms() < deadline);
    return -1;
}

static int s_add_threads(kit_cluster_t *cluster, int threads) {
    char text[16];
    snprintf(text, sizeof text, "%d", threads);
    for (size_t i = 0; threads > 0 && i < cluster->count; i++)
        if (kit_node_args(&cluster->nodes[i], "--http-threads", text, NULL))
            return -1;
    return 0;
}

int kit_cluster_start(kit_cluster_t *cluster, const kit_cluster_opts_t *opts) {
    memset(cluster, 0, sizeof *cluster);
    if (opts->followers + 1 > KIT_MAX_NODES)
        return -1;
    int leader_port = kit_free_port();
    cluster->count = opts->followers + 1;
    int rc = leader_port > 0 ? 0 : -1;
    if (opts->peers)
        rc = rc ? rc : s_setup_peers(cluster, opts);
    for (size_t k = 1; !opts->peers && rc == 0 && k < cluster->count; k++)
        rc = s_setup_follower(&cluster->nodes[k], k, leader_port, opts);
    if (rc == 0 && !opts->peers)
        rc = s_setup_leader(cluster, leader_port, opts);
    if (rc == 0)
        rc = s_add_threads(cluster, opts->http_threads);
    for (size_t k = 0; rc == 0 && k < cluster->count; k++)
        for (size_t i = 0; rc == 0 && opts->node_args && opts->node_args[i];
             i++)
            rc = kit_node_args(&cluster->nodes[k], opts->node_args[i], NULL);
    /* Followers first: their ROUTERs are bound when the leader connects. */
    for (size_t k = 1; rc == 0 && k <= cluster->count; k++)
        rc = kit_node_start(&cluster->nodes[k % cluster->count]);
    if (rc == 0)
        rc = kit_cluster_wait_healthy(cluster, S_START_TIMEOUT_MS);
    if (rc == 0 && opts->peers &&
        kit_cluster_leader(cluster, S_START_TIMEOUT_MS) < 0)
        rc = -1;
    if (rc != 0) {
        fprintf(stderr, "kit: the cluster did not start\n");
        kit_cluster_stop(cluster);
    }
    return rc;
}

int kit_cluster_wait_healthy(kit_cluster_t *cluster, int timeout_ms) {
    int64_t deadline = kit_now_ms() + timeout_ms;
    for (size_t i = 0; i < cluster->count; i++) {
        int64_t left = deadline - kit_now_ms();
        if (kit_node_wait_healthy(&cluster->nodes[i],
                                  left > 0 ? (int)left : 1) != 0)
            return -1;
    }
    return 0;
}

int kit_cluster_restart(kit_cluster_t *cluster, size_t i, int timeout_ms) {
    kit_node_t *node = &cluster->nodes[i];
    if (cluster->external || i >= cluster->count)
        return -1;
    if (node->pid > 0)
        kit_node_stop(node, S_STOP_TIMEOUT_MS);
    if (kit_node_start(node) != 0)
        return -1;
    return kit_node_wait_healthy(node, timeout_ms);
}

bool kit_cluster_alive(kit_cluster_t *cluster) {
    bool alive = true;
    for (size_t i = 0; !cluster->external && i < cluster->count; i++) {
        kit_node_t *node = &cluster->nodes[i];
        if (node->argc > 0 && node->pid == 0 && node->crash_code == 0)
            continue; /* stopped on purpose */
        if (!kit_node_running(node)) {
            kit_node_print_log(node, 2000);
            alive = false;
        }
    }
    return alive;
}

int kit_cluster_stop(kit_cluster_t *cluster) {
    int unclean = 0;
    if (cluster->external)
        return 0;
    /* Every node at once: SIGTERM to all, then wait for each. */
    for (size_t i = 0; i < cluster->count; i++)
        kit_node_term(&cluster->nodes[i]);
    for (size_t i = 0; i < cluster->count; i++) {
        kit_node_t *node = &cluster->nodes[i];
        if (kit_node_wait(node, S_STOP_TIMEOUT_MS) != 0)
            unclean++;
        kit_node_free(node);
    }
    cluster->count = 0;
    return unclean;
}
