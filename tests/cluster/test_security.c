/*  test_security.c - CURVE on every ZeroMQ link, with real qkv-node
    processes (PEERS, CURVE=on, CLIENT_KEYS).

    Three nodes, each with a key pair the suite makes (secret files mode
    0600). Clients: a write key, a read key, a key the nodes do not list,
    and no key at all; only the write key writes, the read key reads and
    is refused writes (forbidden), the others get nothing done and are
    told unauthorized (libqkv watches the handshake). Peers: a
    stranger's key on a follower's replication port, and a member's key
    posing as the leader (routing id of another member), each sending
    well-formed forged messages (an APPEND of a far higher term, a VOTE
    with the transfer flag, a TIMEOUT_NOW): no node changes term or
    leader, the data stays identical, and /metrics counts the denials.
    Start-up refuses a secret key others may read and a key that is not
    the one PEERS lists.
*/
#include "kit.h"
#include "kit_curve.h"
#include "qkv_client.h"
#include "qkv_key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define NODES 3

static char s_dir[512];          /* key files */
static char s_clients_file[600]; /* CLIENT_KEYS */
static kit_keypair_t s_node[NODES], s_writer, s_reader, s_stranger;
static const char *s_pubs[NODES];
static kit_cluster_t s_cluster;
static int s_leader = -1;

static void s_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int s_setup(void) {
    if (kit_node_keys("test_security", NODES, s_node, s_pubs, s_dir,
                      sizeof s_dir) != 0 ||
        kit_keypair(&s_writer, NULL, NULL) ||
        kit_keypair(&s_reader, NULL, NULL) ||
        kit_keypair(&s_stranger, NULL, NULL))
        return -1;
    snprintf(s_clients_file, sizeof s_clients_file, "%s/clients", s_dir);
    FILE *f = fopen(s_clients_file, "w");
    if (!f)
        return -1;
    fprintf(f, "# test clients\nwrite %s writer\n\nread %s reader\n",
            s_writer.pub, s_reader.pub);
    fclose(f);
    const char *args[] = {
        "--curve",      "on", "--curve-key-dir", s_dir, "--client-keys",
        s_clients_file, NULL};
    kit_cluster_opts_t opts = {.followers = NODES - 1,
                               .write_quorum = 1,
                               .peers = true,
                               .peer_keys = s_pubs,
                               .node_args = args};
    if (kit_cluster_start(&s_cluster, &opts) != 0)
        return -1;
    s_leader = kit_cluster_leader(&s_cluster, 10000);
    return s_leader >= 0 ? 0 : -1;
}

static int s_teardown(void) {
    int unclean = kit_cluster_stop(&s_cluster);
    kit_rmtree(s_dir);
    return unclean ? -1 : 0;
}

/* A libqkv handle on node k's client port with key pair p (NULL: plain
   text) trusting node k's key; requests give up after timeout_ms. */
static qkv_client_t *s_client(int k, const kit_keypair_t *p, int timeout_ms) {
    char endpoint[128], err[256];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d",
             s_cluster.nodes[k].client_port);
    qkv_client_options_t o = {.timeout_ms = timeout_ms,
                              .retry_ms = -1,
                              .curve_secret_key = p ? p->sec : NULL,
                              .curve_server_key = s_node[k].pub};
    qkv_client_t *c = qkv_client_new(endpoint, &o, err, sizeof err);
    if (!c)
        fprintf(stderr, "\n  qkv_client_new: %s", err);
    return c;
}

/* The value of a counter in node k's /metrics; -1 when absent. */
static long long s_metric(int k, const char *name) {
    char url[300], *body = NULL;
    long status = 0;
    snprintf(url, sizeof url, "%s/metrics", s_cluster.nodes[k].url);
    if (kit_http_get(url, &status, &body) != 0 || status != 200) {
        free(body);
        return -1;
    }
    long long value = -1;
    size_t len = strlen(name);
    for (char *line = body; line && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (!strncmp(line, name, len) && line[len] == ' ')
            value = atoll(line + len + 1);
    }
    free(body);
    return value;
}

/*  ---------------------------------------------------------------------
    Clients */

static void test_write_key_writes(void) {
    qkv_client_t *c = s_client(s_leader, &s_writer, 5000);
    CU_ASSERT_FATAL(c != NULL);
    qkv_result_t r = {0};
    CU_ASSERT_EQUAL(qkv_put(c, "w1", 2, "v1", 2, &r), QKV_OK);
    CU_ASSERT(r.index > 0);
    /* through a follower: not_leader carries the leader's key */
    int follower = (s_leader + 1) % NODES;
    qkv_client_t *f = s_client(follower, &s_writer, 5000);
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(qkv_put(f, "w2", 2, "v2", 2, &r), QKV_OK);
    qkv_result_t g = {0};
    CU_ASSERT_EQUAL(qkv_get(c, "w2", 2, r.index, &g), QKV_OK);
    CU_ASSERT(g.value && !strcmp(g.value, "v2"));
    free(g.value);
    qkv_client_destroy(&f);
    qkv_client_destroy(&c);
}

static void test_read_key_reads_only(void) {
    qkv_client_t *c = s_client(s_leader, &s_reader, 5000);
    CU_ASSERT_FATAL(c != NULL);
    qkv_result_t r = {0};
    CU_ASSERT_EQUAL(qkv_get(c, "w1", 2, 0, &r), QKV_OK);
    CU_ASSERT(r.value && !strcmp(r.value, "v1"));
    free(r.value);
    long long before = s_metric(s_leader, "qkv_client_forbidden_total");
    CU_ASSERT_EQUAL(qkv_put(c, "r1", 2, "x", 1, NULL), QKV_EFORBIDDEN);
    CU_ASSERT_EQUAL(qkv_delete(c, "w1", 2, NULL), QKV_EFORBIDDEN);
    CU_ASSERT_EQUAL(s_metric(s_leader, "qkv_client_forbidden_total"),
                    before + 2);
    qkv_client_destroy(&c);
    /* nothing of it was written */
    c = s_client(s_leader, &s_writer, 5000);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(qkv_get(c, "r1", 2, 0, NULL), QKV_ENOTFOUND);
    CU_ASSERT_EQUAL(qkv_get(c, "w1", 2, 0, NULL), QKV_OK);
    qkv_client_destroy(&c);
}

static void test_unknown_keys_get_nothing(void) {
    long long denied = s_metric(s_leader, "qkv_curve_denied_client_total");
    qkv_client_t *c = s_client(s_leader, &s_stranger, 700);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(qkv_put(c, "s1", 2, "x", 1, NULL), QKV_EUNAUTHORIZED);
    CU_ASSERT_EQUAL(qkv_get(c, "w1", 2, 0, NULL), QKV_EUNAUTHORIZED);
    qkv_client_destroy(&c);
    CU_ASSERT(s_metric(s_leader, "qkv_curve_denied_client_total") > denied);
    /* plain text on a CURVE port: no handshake, nothing done */
    c = s_client(s_leader, NULL, 700);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(qkv_put(c, "s2", 2, "x", 1, NULL), QKV_EUNAUTHORIZED);
    qkv_client_destroy(&c);
    c = s_client(s_leader, &s_writer, 5000);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(qkv_get(c, "s1", 2, 0, NULL), QKV_ENOTFOUND);
    CU_ASSERT_EQUAL(qkv_get(c, "s2", 2, 0, NULL), QKV_ENOTFOUND);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Peers */

/* Well-formed forged messages as the leader would send them, with a term
   far above the cluster's (kit_forge_leader), sent to node k as routing
   id as with key pair p. */
static void s_forge_and_send(int k, const kit_keypair_t *p, const char *as) {
    kit_cluster_facts_t c;
    kit_forgery_t f;
    CU_ASSERT_FATAL(kit_cluster_facts(&s_cluster, (size_t)k, &c) == 0);
    CU_ASSERT_FATAL(kit_forge_leader(&f, &c, true) == 0);
    kit_send_as(s_cluster.nodes[k].repl_port, as, p, s_node[k].pub, f.frames,
                f.sizes, 3);
    kit_forgery_free(&f);
}

/* Every node: the same term and leader as before, and no forged key. */
static void s_expect_unchanged(uint64_t term) {
    CU_ASSERT(kit_cluster_alive(&s_cluster));
    CU_ASSERT_EQUAL(kit_cluster_leader(&s_cluster, 5000), s_leader);
    for (int k = 0; k < NODES; k++) {
        CU_ASSERT_EQUAL(kit_qkv_health_u64(s_cluster.nodes[k].url, "term"),
                        term);
        long status = 0;
        json_t *r =
            kit_qkv_read(s_cluster.nodes[k].url, "/get", "forged", &status);
        CU_ASSERT_EQUAL(status, 404);
        json_decref(r);
    }
}

static void test_stranger_cannot_replicate(void) {
    int follower = (s_leader + 1) % NODES;
    uint64_t term = kit_qkv_health_u64(s_cluster.nodes[s_leader].url, "term");
    long long denied = s_metric(follower, "qkv_curve_denied_replication_total");
    char leader_id[16];
    snprintf(leader_id, sizeof leader_id, "node%d", s_leader);
    s_forge_and_send(follower, &s_stranger, leader_id);
    s_expect_unchanged(term);
    CU_ASSERT(s_metric(follower, "qkv_curve_denied_replication_total") >
              denied);
}

static void test_member_cannot_pose_as_another(void) {
    int follower = (s_leader + 1) % NODES, third = (s_leader + 2) % NODES;
    uint64_t term = kit_qkv_health_u64(s_cluster.nodes[s_leader].url, "term");
    long long forged = s_metric(follower, "qkv_replication_forged_total");
    char leader_id[16];
    snprintf(leader_id, sizeof leader_id, "node%d", s_leader);
    /* the third node's own key, but the leader's routing id */
    s_forge_and_send(follower, &s_node[third], leader_id);
    s_expect_unchanged(term);
    CU_ASSERT(s_metric(follower, "qkv_replication_forged_total") > forged);
    /* and the cluster still commits */
    qkv_client_t *c = s_client(s_leader, &s_writer, 5000);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(qkv_put(c, "after", 5, "ok", 2, NULL), QKV_OK);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Start-up */

/* Starts a node of its own with the cluster's PEERS entry for node k,
   environment given as "--flag value" pairs, and expects it to exit with
   an error naming what. */
static void s_expect_refused(const char *key_dir, const char *what) {
    kit_node_t node;
    kit_node_init(&node, "refused", kit_free_port(), kit_free_port());
    char peers[600];
    snprintf(peers, sizeof peers,
             "node0=tcp://127.0.0.1:%d|tcp://127.0.0.1:%d|http://127.0.0.1:%d|"
             "key=%s",
             node.repl_port, node.client_port, node.port, s_node[0].pub);
    CU_ASSERT_FATAL(kit_node_args(&node, "--node-id", "node0", "--peers", peers,
                                  "--curve", "on", "--curve-key-dir", key_dir,
                                  NULL) == 0);
    CU_ASSERT_FATAL(kit_node_start(&node) == 0);
    for (int i = 0; i < 100 && kit_node_running(&node); i++)
        s_sleep_ms(50);
    CU_ASSERT(!kit_node_running(&node));
    CU_ASSERT(node.crash_code != 0);
    FILE *f = fopen(node.log_path, "r");
    char log[8192] = "";
    if (f) {
        size_t n = fread(log, 1, sizeof log - 1, f);
        log[n] = '\0';
        fclose(f);
    }
    CU_ASSERT(strstr(log, what) != NULL);
    if (!strstr(log, what))
        fprintf(stderr, "\n  wanted '%s' in: %s", what, log);
    kit_node_free(&node);
}

static void test_bad_keys_refused_at_start(void) {
    char dir[700], path[800], err[900];
    /* a secret key others may read */
    snprintf(dir, sizeof dir, "%s/open", s_dir);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/node0.key", dir);
    CU_ASSERT_FATAL(
        qkv_key_write(path, s_node[0].sec, true, "t", err, sizeof err) == 0);
    CU_ASSERT_FATAL(chmod(path, 0644) == 0);
    s_expect_refused(dir, "others may read");
    /* a key that is not the one PEERS lists */
    snprintf(dir, sizeof dir, "%s/wrong", s_dir);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/node0.key", dir);
    CU_ASSERT_FATAL(
        qkv_key_write(path, s_node[1].sec, true, "t", err, sizeof err) == 0);
    s_expect_refused(dir, "is not the key PEERS lists");
    /* no key at all */
    snprintf(dir, sizeof dir, "%s/none", s_dir);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    s_expect_refused(dir, "cannot open");
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_write_key_writes),
        KIT_TEST(test_read_key_reads_only),
        KIT_TEST(test_unknown_keys_get_nothing),
        KIT_TEST(test_stranger_cannot_replicate),
        KIT_TEST(test_member_cannot_pose_as_another),
        KIT_TEST(test_bad_keys_refused_at_start),
        KIT_TESTS_END};
    return kit_add_suite("curve", s_setup, s_teardown, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
