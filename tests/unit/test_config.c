/*  test_config.c - the node's settings (node/include/qkv_config.h).

    Defaults, environment against flags (flags win), both flag forms,
    delays in seconds with decimals, --help, the usage text, and every bad
    value refused with -1 and a message naming the setting. The environment
    is a fake getenv over a table, so the process environment never counts.
*/
#include "kit.h"
#include "qkv_config.h"
#include "qkv_curve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *value;
} env_t;

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NOARGS ((const char *const[]){NULL})
#define ENV(...) ((const env_t[]){__VA_ARGS__, {NULL, NULL}})
#define NOENV ((const env_t[]){{NULL, NULL}})

static const env_t *s_env;

static const char *s_getenv(const char *name) {
    for (const env_t *e = s_env; e && e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e->value;
    return NULL;
}

static char s_err[1024];

/* Parses env and args (argv[0] added); cfg must be cleared after. */
static int parse(qkv_config_t *cfg, const env_t *env, const char *const *args) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = "qkv-node";
    for (size_t i = 0; args[i] && argc < 63; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    s_env = env;
    memset(cfg, 0, sizeof *cfg);
    s_err[0] = '\0';
    return qkv_config_parse(cfg, argc, argv, s_getenv, s_err, sizeof s_err);
}

/* Describes a case for failure messages. */
static void describe(const env_t *env, const char *const *args, char *out,
                     size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (const env_t *e = env; e->name && used < size; e++)
        used += (size_t)snprintf(out + used, size - used, "%s=%.40s ", e->name,
                                 e->value);
    for (size_t i = 0; args[i] && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%.40s ", args[i]);
}

/* Expects -1 with an err naming `names` (case-insensitive). */
static void expect_bad(const env_t *env, const char *const *args,
                       const char *names) {
    qkv_config_t cfg;
    int rc = parse(&cfg, env, args);
    bool named = strcasestr(s_err, names) != NULL;
    if (rc != -1 || !named) {
        char what[512];
        describe(env, args, what, sizeof what);
        fprintf(stderr, "\n  [%s] gave %d, err \"%s\" (wanted -1 naming %s)",
                what, rc, s_err, names);
    }
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT(named);
    qkv_config_clear(&cfg);
}

/* The same bad value as VAR=value and as --flag=value and --flag value. */
static void expect_bad_both(const char *var, const char *flag,
                            const char *value) {
    char eq[256];
    snprintf(eq, sizeof eq, "%s=%s", flag, value);
    const env_t env[] = {{var, value}, {NULL, NULL}};
    expect_bad(env, NOARGS, var);
    expect_bad(NOENV, ARGS(eq), var);
    if (value[0] != '-')
        expect_bad(NOENV, ARGS(flag, value), var);
}

static void expect_ok(qkv_config_t *cfg, const env_t *env,
                      const char *const *args) {
    int rc = parse(cfg, env, args);
    if (rc != 0) {
        char what[512];
        describe(env, args, what, sizeof what);
        fprintf(stderr, "\n  [%s] gave %d, err \"%s\" (wanted 0)", what, rc,
                s_err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/*  ---------------------------------------------------------------------
    Valid settings */

static void test_defaults(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, NOENV, NOARGS);
    CU_ASSERT_EQUAL(cfg.role, QKV_ROLE_LEADER);
    CU_ASSERT_EQUAL(cfg.port, 8000);
    CU_ASSERT_STRING_EQUAL(cfg.bind, "127.0.0.1");
    CU_ASSERT_EQUAL(cfg.repl_port, 9000);
    CU_ASSERT_EQUAL(cfg.follower_count, 0);
    CU_ASSERT_EQUAL(cfg.write_quorum, 0);
    CU_ASSERT(cfg.min_delay_us == 0);
    CU_ASSERT(cfg.max_delay_us == 0);
    CU_ASSERT_EQUAL(cfg.replication_timeout_ms, 5000);
    CU_ASSERT_EQUAL(cfg.heartbeat_ms, 100);
    CU_ASSERT_EQUAL(cfg.commit_notify_ms, 1);
    CU_ASSERT_EQUAL(cfg.cpu_count, 0);
    CU_ASSERT_STRING_EQUAL(cfg.leader_url, "");
    CU_ASSERT_EQUAL(cfg.http_threads, 64);
    CU_ASSERT(cfg.max_key_bytes == 4096);
    CU_ASSERT(cfg.max_value_bytes == 1048576);
    CU_ASSERT_STRING_EQUAL(cfg.node_id, "leader-8000");
    CU_ASSERT_EQUAL(cfg.client_port, 7000);
    CU_ASSERT_STRING_EQUAL(cfg.leader_endpoint, "");
    CU_ASSERT(cfg.dedup_window == 100000);
    CU_ASSERT(cfg.session_ttl_s == 86400);
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "./qkv-data/leader-8000");
    CU_ASSERT_EQUAL(cfg.fsync, 0);
    CU_ASSERT(cfg.snapshot_entries == 100000);
    CU_ASSERT(cfg.snapshot_log_bytes == 256u << 20);
    CU_ASSERT(cfg.wal_segment_bytes == 64u << 20);
    CU_ASSERT(cfg.syncing_reads);
    CU_ASSERT(!cfg.repair_log && !cfg.drop_foreign_data);
    qkv_config_clear(&cfg);
}

static void test_durability_settings(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, ENV({"DATA_DIR", "none"}, {"FSYNC", "everysec"}),
              ARGS("--snapshot-entries", "500", "--syncing-reads", "refuse",
                   "--repair-log", "1", "--drop-foreign-data=yes"));
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "");
    CU_ASSERT_EQUAL(cfg.fsync, 1);
    CU_ASSERT(cfg.snapshot_entries == 500);
    CU_ASSERT(!cfg.syncing_reads && cfg.repair_log && cfg.drop_foreign_data);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"NODE_ID", "n1"}, {"FSYNC", "never"}),
              ARGS("--fsync", "always"));
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "./qkv-data/n1");
    CU_ASSERT_EQUAL(cfg.fsync, 0);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, NOENV, ARGS("--data-dir", "/var/lib/qkv"));
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/var/lib/qkv");
    qkv_config_clear(&cfg);
}

#define PEERS3                                                                 \
    "a=tcp://127.0.0.1:9001|tcp://127.0.0.1:7001|http://127.0.0.1:8001,"       \
    "b=tcp://127.0.0.1:9002|tcp://127.0.0.1:7002|http://127.0.0.1:8002/|"      \
    "key=Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID,"                            \
    "c=tcp://h3:9003|tcp://h3:7003|https://h3"

static void test_peers(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, ENV({"PEERS", PEERS3}, {"NODE_ID", "b"}), NOARGS);
    CU_ASSERT_EQUAL_FATAL(cfg.peer_count, 3);
    CU_ASSERT_EQUAL(cfg.self, 1);
    CU_ASSERT_STRING_EQUAL(cfg.peers[1].http, "http://127.0.0.1:8002");
    CU_ASSERT_STRING_EQUAL(cfg.peers[1].options,
                           "key=Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
    CU_ASSERT_STRING_EQUAL(cfg.peers[1].key,
                           "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
    CU_ASSERT_STRING_EQUAL(cfg.peers[0].key, "");
    CU_ASSERT_STRING_EQUAL(cfg.peers[2].http, "https://h3");
    /* ports, the advertised client endpoint and the peer slots come from
       this node's entry and the others' */
    CU_ASSERT_EQUAL(cfg.port, 8002);
    CU_ASSERT_EQUAL(cfg.repl_port, 9002);
    CU_ASSERT_EQUAL(cfg.client_port, 7002);
    CU_ASSERT_STRING_EQUAL(cfg.client_advertise, "tcp://127.0.0.1:7002");
    CU_ASSERT_EQUAL_FATAL(cfg.follower_count, 2);
    CU_ASSERT_STRING_EQUAL(cfg.followers[0], "tcp://127.0.0.1:9001");
    CU_ASSERT_STRING_EQUAL(cfg.followers[1], "tcp://h3:9003");
    CU_ASSERT_STRING_EQUAL(qkv_config_peer(&cfg, 0)->id, "a");
    CU_ASSERT_STRING_EQUAL(qkv_config_peer(&cfg, 1)->id, "c");
    CU_ASSERT_EQUAL(cfg.write_quorum, 1);
    CU_ASSERT_EQUAL(cfg.election_timeout_ms, 500);
    CU_ASSERT_EQUAL(cfg.role, QKV_ROLE_FOLLOWER);
    CU_ASSERT(!cfg.campaign_at_start);
    CU_ASSERT(cfg.cluster_hash != 0);
    uint64_t hash = cfg.cluster_hash;
    qkv_config_clear(&cfg);
    /* ROLE=leader: a bootstrap wish; the hash is the same on every node
       and changes with the quorum or FSYNC */
    expect_ok(&cfg, ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
              ARGS("--role", "leader", "--port", "18001",
                   "--election-timeout-ms", "1000"));
    CU_ASSERT(cfg.campaign_at_start);
    CU_ASSERT_EQUAL(cfg.role, QKV_ROLE_FOLLOWER);
    CU_ASSERT_EQUAL(cfg.port, 18001);
    CU_ASSERT_EQUAL(cfg.election_timeout_ms, 1000);
    CU_ASSERT(cfg.cluster_hash == hash);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
              ARGS("--write-quorum", "2"));
    CU_ASSERT(cfg.cluster_hash != hash);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
              ARGS("--fsync", "never"));
    CU_ASSERT(cfg.cluster_hash != hash);
    qkv_config_clear(&cfg);
    /* a node's key is not in the hash (keys rotate by rolling restarts);
       other options are */
    const char *no_key =
        "a=tcp://127.0.0.1:9001|tcp://127.0.0.1:7001|http://127.0.0.1:8001,"
        "b=tcp://127.0.0.1:9002|tcp://127.0.0.1:7002|http://127.0.0.1:8002,"
        "c=tcp://h3:9003|tcp://h3:7003|https://h3";
    expect_ok(&cfg, ENV({"PEERS", no_key}, {"NODE_ID", "a"}), NOARGS);
    CU_ASSERT(cfg.cluster_hash == hash);
    qkv_config_clear(&cfg);
    const char *other_option =
        "a=tcp://127.0.0.1:9001|tcp://127.0.0.1:7001|http://127.0.0.1:8001,"
        "b=tcp://127.0.0.1:9002|tcp://127.0.0.1:7002|http://127.0.0.1:8002|"
        "zone=x,c=tcp://h3:9003|tcp://h3:7003|https://h3";
    expect_ok(&cfg, ENV({"PEERS", other_option}, {"NODE_ID", "a"}), NOARGS);
    CU_ASSERT(cfg.cluster_hash != hash);
    qkv_config_clear(&cfg);
    /* one node alone */
    expect_ok(
        &cfg,
        ENV({"PEERS", "x=tcp://a:1|tcp://a:2|http://a:3"}, {"NODE_ID", "x"}),
        NOARGS);
    CU_ASSERT_EQUAL(cfg.follower_count, 0);
    CU_ASSERT_EQUAL(cfg.write_quorum, 0);
    qkv_config_clear(&cfg);
}

static void test_bad_peers(void) {
    const char *bad[] = {
        ",",
        PEERS3 ",",
        "a=tcp://h:1|tcp://h:2",
        "=tcp://h:1|tcp://h:2|http://h:3",
        "a|b=tcp://h:1|tcp://h:2|http://h:3",
        "a=h:1|tcp://h:2|http://h:3",
        "a=tcp://h:1|tcp://h:2|ftp://h:3",
        "a=tcp://h:1|tcp://h:2|http://h:3/path",
        "a=tcp://h:1|tcp://h:2|http://h:99999",
        "a=tcp://h:1|tcp://h:2|http://h:3|novalue",
        "a=tcp://h:1|tcp://h:2|http://h:3,a=tcp://h:4|tcp://h:5|http://h:6",
        "a=tcp://h:1|tcp://h:2|http://h:3,b=tcp://h:1|tcp://h:5|http://h:6",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad(ENV({"PEERS", bad[i]}, {"NODE_ID", "a"}), NOARGS, "PEERS");
    expect_bad(ENV({"PEERS", PEERS3}), NOARGS, "NODE_ID");
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "d"}), NOARGS, "NODE_ID");
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
               ARGS("--followers", "tcp://h:1"), "FOLLOWERS");
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
               ARGS("--leader-url", "http://h:1"), "LEADER_URL");
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
               ARGS("--leader-endpoint", "tcp://h:1"), "LEADER_ENDPOINT");
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
               ARGS("--client-advertise", "tcp://h:1"), "CLIENT_ADVERTISE");
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
               ARGS("--write-quorum", "3"), "WRITE_QUORUM");
    /* an election timeout a live leader's heartbeats could not beat */
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
               ARGS("--election-timeout-ms", "299"), "ELECTION_TIMEOUT_MS");
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}),
               ARGS("--max-delay-ms", "100", "--election-timeout-ms", "399"),
               "ELECTION_TIMEOUT_MS");
    expect_bad_both("ELECTION_TIMEOUT_MS", "--election-timeout-ms", "0");
    /* 65 nodes is the most */
    char many[66 * 80];
    size_t used = 0;
    for (int i = 0; i < 66; i++)
        used +=
            (size_t)snprintf(many + used, sizeof(many) - used,
                             "%sn%d=tcp://h:%d|tcp://h:%d|http://h:%d",
                             i ? "," : "", i, 10000 + i, 20000 + i, 30000 + i);
    expect_bad(ENV({"PEERS", many}, {"NODE_ID", "n0"}), NOARGS, "PEERS");
}

static void test_bad_durability_settings(void) {
    expect_bad_both("FSYNC", "--fsync", "sometimes");
    expect_bad_both("FSYNC", "--fsync", "ALWAYS");
    expect_bad_both("DATA_DIR", "--data-dir", "a dir");
    expect_bad_both("SNAPSHOT_ENTRIES", "--snapshot-entries", "99");
    expect_bad_both("SNAPSHOT_ENTRIES", "--snapshot-entries", "1e6");
    expect_bad_both("SNAPSHOT_LOG_BYTES", "--snapshot-log-bytes", "1024");
    expect_bad_both("WAL_SEGMENT_BYTES", "--wal-segment-bytes", "100");
    expect_bad_both("SYNCING_READS", "--syncing-reads", "maybe");
    expect_bad_both("REPAIR_LOG", "--repair-log", "2");
    expect_bad_both("DROP_FOREIGN_DATA", "--drop-foreign-data", "y");
}

#define KEY_A "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
#define KEY_B "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
#define PEERS2_KEYS                                                            \
    "a=tcp://h:9001|tcp://h:7001|http://h:8001|key=" KEY_A ","                 \
    "b=tcp://h:9002|tcp://h:7002|http://h:8002|x=1|key=" KEY_B

static void test_security_settings(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, NOENV, NOARGS);
    CU_ASSERT(!cfg.curve);
    CU_ASSERT_STRING_EQUAL(cfg.curve_key_dir, "./qkv-keys");
    CU_ASSERT_STRING_EQUAL(cfg.client_keys, "");
    CU_ASSERT_STRING_EQUAL(cfg.http_tokens_file, "");
    CU_ASSERT_STRING_EQUAL(cfg.tls_cert_file, "");
    CU_ASSERT(cfg.max_memory == 0);
    CU_ASSERT(cfg.max_body_bytes == 6 * (4096 + 1048576) + 4096);
    CU_ASSERT_EQUAL(cfg.max_pending_writes, 10000);
    CU_ASSERT_EQUAL(cfg.request_timeout_ms, 10000);
    qkv_config_clear(&cfg);
    expect_ok(&cfg,
              ENV({"PEERS", PEERS2_KEYS}, {"NODE_ID", "b"}, {"CURVE", "on"},
                  {"CLIENT_KEYS", "/etc/qkv/clients"}, {"MAX_MEMORY", "2G"}),
              ARGS("--curve-key-dir", "/keys", "--http-tokens-file", "/t",
                   "--tls-cert-file", "/c.pem", "--max-body-bytes", "1000",
                   "--max-pending-writes", "5", "--request-timeout-ms",
                   "2500"));
    CU_ASSERT(cfg.curve);
    CU_ASSERT_STRING_EQUAL(cfg.peers[0].key, KEY_A);
    CU_ASSERT_STRING_EQUAL(cfg.peers[1].key, KEY_B);
    CU_ASSERT_STRING_EQUAL(cfg.curve_key_dir, "/keys");
    CU_ASSERT_STRING_EQUAL(cfg.client_keys, "/etc/qkv/clients");
    CU_ASSERT_STRING_EQUAL(cfg.http_tokens_file, "/t");
    CU_ASSERT_STRING_EQUAL(cfg.tls_cert_file, "/c.pem");
    CU_ASSERT_STRING_EQUAL(cfg.tls_key_file, "");
    CU_ASSERT(cfg.max_memory == 2ULL << 30);
    CU_ASSERT(cfg.max_body_bytes == 1000);
    CU_ASSERT_EQUAL(cfg.max_pending_writes, 5);
    CU_ASSERT_EQUAL(cfg.request_timeout_ms, 2500);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"CLIENT_KEYS", "any"}, {"MAX_MEMORY", "64m"}), NOARGS);
    CU_ASSERT_STRING_EQUAL(cfg.client_keys, "");
    CU_ASSERT(cfg.max_memory == 64ULL << 20);
    qkv_config_clear(&cfg);
}

/* COMMIT_NOTIFY_MS and CPU_LIST: the speed settings. */
static void test_speed_settings(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, ENV({"COMMIT_NOTIFY_MS", "0"}, {"CPU_LIST", "0,2-3,3"}),
              NOARGS);
    CU_ASSERT_EQUAL(cfg.commit_notify_ms, 0);
    CU_ASSERT_EQUAL(cfg.cpu_count, 3);
    CU_ASSERT(CPU_ISSET(0, &cfg.cpu_set) && !CPU_ISSET(1, &cfg.cpu_set) &&
              CPU_ISSET(2, &cfg.cpu_set) && CPU_ISSET(3, &cfg.cpu_set));
    qkv_config_clear(&cfg);
    expect_ok(&cfg, NOENV,
              ARGS("--commit-notify-ms", "1000", "--cpu-list", "1023"));
    CU_ASSERT_EQUAL(cfg.commit_notify_ms, 1000);
    CU_ASSERT_EQUAL(cfg.cpu_count, 1);
    CU_ASSERT(CPU_ISSET(1023, &cfg.cpu_set));
    qkv_config_clear(&cfg);
}

/* CLIENT_KEYS files: read and write lines, comments; each bad line named. */
static void test_client_keys_file(void) {
    static const struct {
        const char *text;
        int count;       /* keys, or -1 */
        int writes;      /* of them write keys */
        const char *err; /* -1: the message has this */
    } cases[] = {
        {"", 0, 0, NULL},
        {"# none\n\n   \n", 0, 0, NULL},
        {"write " KEY_A "\nread " KEY_B " bob\n", 2, 1, NULL},
        {"  read " KEY_A "\r\n", 1, 0, NULL},
        {"write " KEY_A, 1, 1, NULL},
        {"admin " KEY_A "\n", -1, 0, "line 1"},
        {"# c\nwrite\n", -1, 0, "line 2"},
        {"write short\n", -1, 0, "Z85"},
        {"write " KEY_A "\nread " KEY_A "\n", -1, 0, "twice"},
        {"read " KEY_A "\n\0write", -1, 0, "NUL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkv_client_key_t keys[4];
        char err[256] = "";
        size_t len = strlen(cases[i].text);
        if (strstr(cases[i].err ? cases[i].err : "", "NUL"))
            len += 6; /* past the NUL */
        int n =
            qkv_client_keys_parse(cases[i].text, len, keys, 4, err, sizeof err);
        if (n != cases[i].count)
            fprintf(stderr, "\n  case %zu: %d keys (%s)", i, n, err);
        CU_ASSERT_EQUAL(n, cases[i].count);
        int writes = 0;
        for (int k = 0; k < n; k++)
            writes += keys[k].write;
        CU_ASSERT_EQUAL(writes, cases[i].writes);
        if (cases[i].err)
            CU_ASSERT(strstr(err, cases[i].err) != NULL);
    }
    /* room for max keys, no more */
    qkv_client_key_t one[1];
    char err[256];
    CU_ASSERT_EQUAL(qkv_client_keys_parse("read " KEY_A "\nread " KEY_B "\n",
                                          strlen(KEY_A) * 2 + 12, one, 1, err,
                                          sizeof err),
                    -1);
}

static void test_bad_security_settings(void) {
    expect_bad_both("CURVE", "--curve", "yes");
    /* CURVE needs PEERS, and a key for every node */
    expect_bad(ENV({"CURVE", "on"}), NOARGS, "PEERS");
    expect_bad(ENV({"PEERS", PEERS3}, {"NODE_ID", "a"}, {"CURVE", "on"}),
               NOARGS, "key");
    expect_bad(ENV({"PEERS", "a=tcp://h:1|tcp://h:2|http://h:3|key=short"},
                   {"NODE_ID", "a"}),
               NOARGS, "PEERS");
    expect_bad(ENV({"PEERS", "a=tcp://h:1|tcp://h:2|http://h:3|key="
                             "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{h~D"},
                   {"NODE_ID", "a"}),
               NOARGS, "PEERS");
    expect_bad(ENV({"CLIENT_KEYS", "/f"}), NOARGS, "CLIENT_KEYS");
    expect_bad_both("CURVE_KEY_DIR", "--curve-key-dir", "a b");
    expect_bad_both("HTTP_TOKENS_FILE", "--http-tokens-file", "a\tb");
    expect_bad(ENV({"TLS_KEY_FILE", "/k.pem"}), NOARGS, "TLS_CERT_FILE");
    const char *mem[] = {"-1", "1T", "abc", "1K", "15M", "9999999999G", NULL};
    for (size_t i = 0; mem[i]; i++)
        expect_bad_both("MAX_MEMORY", "--max-memory", mem[i]);
    const char *bad[] = {"0", "-1", "abc", "99999999999", NULL};
    for (size_t i = 0; bad[i]; i++) {
        expect_bad_both("MAX_BODY_BYTES", "--max-body-bytes", bad[i]);
        expect_bad_both("MAX_PENDING_WRITES", "--max-pending-writes", bad[i]);
        expect_bad_both("REQUEST_TIMEOUT_MS", "--request-timeout-ms", bad[i]);
        if (strcmp(bad[i], "0") != 0)
            expect_bad_both("COMMIT_NOTIFY_MS", "--commit-notify-ms", bad[i]);
    }
    expect_bad_both("REQUEST_TIMEOUT_MS", "--request-timeout-ms", "99");
    expect_bad_both("COMMIT_NOTIFY_MS", "--commit-notify-ms", "1001");
    const char *cpus[] = {"a",  "1-0",  "0,",   ",0",  "0-",
                          "-1", "0-1x", "1024", "0 1", NULL};
    for (size_t i = 0; cpus[i]; i++)
        expect_bad_both("CPU_LIST", "--cpu-list", cpus[i]);
    expect_bad_both("MAX_BODY_BYTES", "--max-body-bytes", "63");
}

static void test_client_settings(void) {
    qkv_config_t cfg;
    expect_ok(
        &cfg, ENV({"CLIENT_PORT", "7100"}, {"DEDUP_WINDOW", "5"}),
        ARGS("--role", "follower", "--leader-endpoint", "tcp://leader:7000"));
    CU_ASSERT_EQUAL(cfg.client_port, 7100);
    CU_ASSERT(cfg.dedup_window == 5);
    CU_ASSERT_STRING_EQUAL(cfg.leader_endpoint, "tcp://leader:7000");
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"CLIENT_PORT", "7100"}), ARGS("--client-port=7200"));
    CU_ASSERT_EQUAL(cfg.client_port, 7200);
    qkv_config_clear(&cfg);
}

static void test_null_getenv(void) {
    qkv_config_t cfg;
    char *argv[] = {"qkv-node", "--port", "8010", NULL};
    memset(&cfg, 0, sizeof cfg);
    CU_ASSERT_EQUAL(qkv_config_parse(&cfg, 3, argv, NULL, s_err, sizeof s_err),
                    0);
    CU_ASSERT_EQUAL(cfg.port, 8010);
    qkv_config_clear(&cfg);
}

static void test_quorum_default_with_followers(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, NOENV,
              ARGS("--followers", "tcp://127.0.0.1:9001,tcp://h2:9002"));
    CU_ASSERT_EQUAL_FATAL(cfg.follower_count, 2);
    CU_ASSERT_STRING_EQUAL(cfg.followers[0], "tcp://127.0.0.1:9001");
    CU_ASSERT_STRING_EQUAL(cfg.followers[1], "tcp://h2:9002");
    CU_ASSERT_EQUAL(cfg.write_quorum, 1);
    qkv_config_clear(&cfg);
    CU_ASSERT_EQUAL(cfg.follower_count, 0);
    CU_ASSERT(cfg.followers[0] == NULL);
    expect_ok(&cfg, ENV({"FOLLOWERS", "tcp://a:1,tcp://b:2,tcp://c:3"}),
              ARGS("--write-quorum", "3"));
    CU_ASSERT_EQUAL(cfg.follower_count, 3);
    CU_ASSERT_EQUAL(cfg.write_quorum, 3);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"FOLLOWERS", "tcp://a:1"}, {"WRITE_QUORUM", "0"}),
              NOARGS);
    CU_ASSERT_EQUAL(cfg.write_quorum, 0);
    qkv_config_clear(&cfg);
}

static void test_node_id_defaults(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, ENV({"ROLE", "follower"}), ARGS("--port", "8001"));
    CU_ASSERT_EQUAL(cfg.role, QKV_ROLE_FOLLOWER);
    CU_ASSERT_STRING_EQUAL(cfg.node_id, "follower-8001");
    qkv_config_clear(&cfg);
    expect_ok(&cfg, NOENV, ARGS("--port=8005"));
    CU_ASSERT_STRING_EQUAL(cfg.node_id, "leader-8005");
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"NODE_ID", "from-env"}), NOARGS);
    CU_ASSERT_STRING_EQUAL(cfg.node_id, "from-env");
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"NODE_ID", "from-env"}),
              ARGS("--node-id", "from-flag"));
    CU_ASSERT_STRING_EQUAL(cfg.node_id, "from-flag");
    qkv_config_clear(&cfg);
}

static void test_every_flag(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, NOENV,
              ARGS("--role", "follower", "--node-id", "n1", "--port", "8101",
                   "--bind", "0.0.0.0", "--repl-port", "9101", "--min-delay-ms",
                   "5", "--max-delay-ms", "15", "--replication-timeout-ms",
                   "700", "--heartbeat-ms", "20", "--leader-url",
                   "http://leader:8000", "--http-threads", "8",
                   "--max-key-bytes", "100", "--max-value-bytes", "2000"));
    CU_ASSERT_EQUAL(cfg.role, QKV_ROLE_FOLLOWER);
    CU_ASSERT_STRING_EQUAL(cfg.node_id, "n1");
    CU_ASSERT_EQUAL(cfg.port, 8101);
    CU_ASSERT_STRING_EQUAL(cfg.bind, "0.0.0.0");
    CU_ASSERT_EQUAL(cfg.repl_port, 9101);
    CU_ASSERT(cfg.min_delay_us == 5000);
    CU_ASSERT(cfg.max_delay_us == 15000);
    CU_ASSERT_EQUAL(cfg.replication_timeout_ms, 700);
    CU_ASSERT_EQUAL(cfg.heartbeat_ms, 20);
    CU_ASSERT_STRING_EQUAL(cfg.leader_url, "http://leader:8000");
    CU_ASSERT_EQUAL(cfg.http_threads, 8);
    CU_ASSERT(cfg.max_key_bytes == 100);
    CU_ASSERT(cfg.max_value_bytes == 2000);
    qkv_config_clear(&cfg);
}

static void test_every_variable(void) {
    qkv_config_t cfg;
    expect_ok(&cfg,
              ENV({"ROLE", "follower"}, {"NODE_ID", "n2"}, {"PORT", "8102"},
                  {"BIND", "0.0.0.0"}, {"REPL_PORT", "9102"},
                  {"MIN_DELAY_MS", "6"}, {"MAX_DELAY_MS", "16"},
                  {"REPLICATION_TIMEOUT_MS", "701"}, {"HEARTBEAT_MS", "21"},
                  {"LEADER_URL", "http://l:1"}, {"HTTP_THREADS", "9"},
                  {"MAX_KEY_BYTES", "101"}, {"MAX_VALUE_BYTES", "2001"}),
              NOARGS);
    CU_ASSERT_EQUAL(cfg.role, QKV_ROLE_FOLLOWER);
    CU_ASSERT_STRING_EQUAL(cfg.node_id, "n2");
    CU_ASSERT_EQUAL(cfg.port, 8102);
    CU_ASSERT_STRING_EQUAL(cfg.bind, "0.0.0.0");
    CU_ASSERT_EQUAL(cfg.repl_port, 9102);
    CU_ASSERT(cfg.min_delay_us == 6000);
    CU_ASSERT(cfg.max_delay_us == 16000);
    CU_ASSERT_EQUAL(cfg.replication_timeout_ms, 701);
    CU_ASSERT_EQUAL(cfg.heartbeat_ms, 21);
    CU_ASSERT_STRING_EQUAL(cfg.leader_url, "http://l:1");
    CU_ASSERT_EQUAL(cfg.http_threads, 9);
    CU_ASSERT(cfg.max_key_bytes == 101);
    CU_ASSERT(cfg.max_value_bytes == 2001);
    qkv_config_clear(&cfg);
}

static void test_flags_win(void) {
    qkv_config_t cfg;
    const env_t *env = ENV({"PORT", "7000"}, {"ROLE", "follower"},
                           {"HEARTBEAT_MS", "30"}, {"BIND", "0.0.0.0"});
    expect_ok(&cfg, env, NOARGS);
    CU_ASSERT_EQUAL(cfg.port, 7000);
    CU_ASSERT_EQUAL(cfg.role, QKV_ROLE_FOLLOWER);
    CU_ASSERT_EQUAL(cfg.heartbeat_ms, 30);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, env,
              ARGS("--port", "7001", "--role=leader", "--heartbeat-ms=31",
                   "--bind", "127.0.0.1"));
    CU_ASSERT_EQUAL(cfg.port, 7001);
    CU_ASSERT_EQUAL(cfg.role, QKV_ROLE_LEADER);
    CU_ASSERT_EQUAL(cfg.heartbeat_ms, 31);
    CU_ASSERT_STRING_EQUAL(cfg.bind, "127.0.0.1");
    qkv_config_clear(&cfg);
    /* A bad flag over a good variable never passes. */
    expect_bad(ENV({"PORT", "7000"}), ARGS("--port", "x"), "PORT");
}

static void test_flag_forms(void) {
    qkv_config_t a, b;
    expect_ok(&a, NOENV, ARGS("--port=8123", "--write-quorum=0"));
    expect_ok(&b, NOENV, ARGS("--port", "8123", "--write-quorum", "0"));
    CU_ASSERT_EQUAL(a.port, 8123);
    CU_ASSERT_EQUAL(b.port, 8123);
    CU_ASSERT_EQUAL(a.write_quorum, b.write_quorum);
    qkv_config_clear(&a);
    qkv_config_clear(&b);
}

static void test_parse_again(void) {
    /* Parsing twice in one process (getopt keeps state) gives the same. */
    for (int round = 0; round < 3; round++) {
        qkv_config_t cfg;
        expect_ok(&cfg, NOENV, ARGS("--port", "8200", "--http-threads=3"));
        CU_ASSERT_EQUAL(cfg.port, 8200);
        CU_ASSERT_EQUAL(cfg.http_threads, 3);
        qkv_config_clear(&cfg);
        expect_bad(NOENV, ARGS("--bogus"), "bogus");
    }
}

static void test_delay_seconds(void) {
    qkv_config_t cfg;
    expect_ok(&cfg, ENV({"MIN_DELAY", "0.05"}, {"MAX_DELAY", "1.25"}), NOARGS);
    CU_ASSERT(cfg.min_delay_us == 50000);
    CU_ASSERT(cfg.max_delay_us == 1250000);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, NOENV, ARGS("--min-delay", "0.001", "--max-delay=2"));
    CU_ASSERT(cfg.min_delay_us == 1000);
    CU_ASSERT(cfg.max_delay_us == 2000000);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"MIN_DELAY", "0"}, {"MAX_DELAY_MS", "30"}), NOARGS);
    CU_ASSERT(cfg.min_delay_us == 0);
    CU_ASSERT(cfg.max_delay_us == 30000);
    qkv_config_clear(&cfg);
    expect_ok(&cfg, ENV({"MIN_DELAY_MS", "20"}, {"MAX_DELAY_MS", "20"}),
              NOARGS);
    CU_ASSERT(cfg.min_delay_us == 20000);
    CU_ASSERT(cfg.max_delay_us == 20000);
    qkv_config_clear(&cfg);
}

static void test_help(void) {
    qkv_config_t cfg;
    CU_ASSERT_EQUAL(parse(&cfg, NOENV, ARGS("--help")), 1);
    qkv_config_clear(&cfg);
    CU_ASSERT_EQUAL(parse(&cfg, ENV({"PORT", "1"}), ARGS("--port=2", "--help")),
                    1);
    qkv_config_clear(&cfg);
}

static void test_usage(void) {
    static const char *const names[][2] = {
        {"ROLE", "--role"},
        {"NODE_ID", "--node-id"},
        {"PORT", "--port"},
        {"BIND", "--bind"},
        {"REPL_PORT", "--repl-port"},
        {"FOLLOWERS", "--followers"},
        {"WRITE_QUORUM", "--write-quorum"},
        {"MIN_DELAY_MS", "--min-delay-ms"},
        {"MAX_DELAY_MS", "--max-delay-ms"},
        {"MIN_DELAY", "--min-delay"},
        {"MAX_DELAY", "--max-delay"},
        {"REPLICATION_TIMEOUT_MS", "--replication-timeout-ms"},
        {"HEARTBEAT_MS", "--heartbeat-ms"},
        {"LEADER_URL", "--leader-url"},
        {"HTTP_THREADS", "--http-threads"},
        {"MAX_KEY_BYTES", "--max-key-bytes"},
        {"MAX_VALUE_BYTES", "--max-value-bytes"},
        {"CLIENT_PORT", "--client-port"},
        {"LEADER_ENDPOINT", "--leader-endpoint"},
        {"DEDUP_WINDOW", "--dedup-window"},
        {"SESSION_TTL_S", "--session-ttl-s"},
        {"DATA_DIR", "--data-dir"},
        {"FSYNC", "--fsync"},
        {"SNAPSHOT_ENTRIES", "--snapshot-entries"},
        {"SNAPSHOT_LOG_BYTES", "--snapshot-log-bytes"},
        {"WAL_SEGMENT_BYTES", "--wal-segment-bytes"},
        {"SYNCING_READS", "--syncing-reads"},
        {"REPAIR_LOG", "--repair-log"},
        {"DROP_FOREIGN_DATA", "--drop-foreign-data"},
        {"COMMIT_NOTIFY_MS", "--commit-notify-ms"},
        {"CPU_LIST", "--cpu-list"},
        {NULL, NULL}};
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    CU_ASSERT_FATAL(out != NULL);
    qkv_config_usage(out);
    fclose(out);
    CU_ASSERT_FATAL(text != NULL);
    for (size_t i = 0; names[i][0]; i++) {
        for (int k = 0; k < 2; k++) {
            if (!strstr(text, names[i][k]))
                fprintf(stderr, "\n  usage does not mention %s", names[i][k]);
            CU_ASSERT(strstr(text, names[i][k]) != NULL);
        }
    }
    free(text);
}

/*  ---------------------------------------------------------------------
    Bad settings */

static void test_bad_flags(void) {
    expect_bad(NOENV, ARGS("--bogus"), "bogus");
    expect_bad(NOENV, ARGS("--bogus=1"), "bogus");
    expect_bad(NOENV, ARGS("--port"), "port");
    expect_bad(NOENV, ARGS("--port", "8001", "--followers"), "followers");
}

static void test_bad_role(void) {
    expect_bad_both("ROLE", "--role", "boss");
    expect_bad_both("ROLE", "--role", "leaderx");
    expect_bad(NOENV, ARGS("--role="), "ROLE");
}

static void test_bad_ports(void) {
    const char *bad[] = {"abc", "-1",  "0", "65536", "99999999999999999999",
                         "80x", "1e3", NULL};
    for (size_t i = 0; bad[i]; i++) {
        expect_bad_both("PORT", "--port", bad[i]);
        expect_bad_both("REPL_PORT", "--repl-port", bad[i]);
    }
    expect_bad(NOENV, ARGS("--port="), "PORT");
}

static void test_bad_client_settings(void) {
    const char *ports[] = {"abc", "-1", "0", "65536", "7000x", NULL};
    for (size_t i = 0; ports[i]; i++)
        expect_bad_both("CLIENT_PORT", "--client-port", ports[i]);
    expect_bad(ENV({"ROLE", "follower"}, {"LEADER_ENDPOINT", "leader:7000"}),
               NOARGS, "LEADER_ENDPOINT");
    expect_bad(ENV({"ROLE", "follower"}),
               ARGS("--leader-endpoint", "tcp://leader"), "LEADER_ENDPOINT");
    expect_bad_both("DEDUP_WINDOW", "--dedup-window", "abc");
    expect_bad_both("DEDUP_WINDOW", "--dedup-window", "-1");
    expect_bad_both("SESSION_TTL_S", "--session-ttl-s", "0");
    expect_bad_both("SESSION_TTL_S", "--session-ttl-s", "1h");
    expect_bad_both("SESSION_TTL_S", "--session-ttl-s", "315360001");
}

static void test_bad_followers(void) {
    const char *bad[] = {"127.0.0.1:9001",
                         "tcp://127.0.0.1",
                         "tcp://:9001",
                         "tcp://127.0.0.1:",
                         "tcp://127.0.0.1:abc",
                         "tcp://127.0.0.1:70000",
                         "tcp://127.0.0.1:0",
                         "udp://127.0.0.1:9001",
                         "tcp://127.0.0.1:9001,",
                         ",tcp://127.0.0.1:9001",
                         "tcp://127.0.0.1:9001,,tcp://127.0.0.1:9002",
                         "tcp://a:1,garbage",
                         NULL};
    for (size_t i = 0; bad[i]; i++)
        expect_bad_both("FOLLOWERS", "--followers", bad[i]);
}

static void test_too_many_followers(void) {
    size_t n = QKV_MAX_FOLLOWERS + 1;
    char *list = malloc(n * 32);
    CU_ASSERT_FATAL(list != NULL);
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        used += (size_t)sprintf(list + used, "%stcp://h:%zu", i ? "," : "",
                                9000 + i);
    const env_t env[] = {{"FOLLOWERS", list}, {NULL, NULL}};
    expect_bad(env, NOARGS, "FOLLOWERS");
    /* Exactly the maximum is fine. */
    char *cut = strrchr(list, ',');
    *cut = '\0';
    qkv_config_t cfg;
    expect_ok(&cfg, env, NOARGS);
    CU_ASSERT_EQUAL(cfg.follower_count, QKV_MAX_FOLLOWERS);
    qkv_config_clear(&cfg);
    free(list);
}

static void test_bad_write_quorum(void) {
    const env_t *two = ENV({"FOLLOWERS", "tcp://a:1,tcp://b:2"});
    expect_bad(two, ARGS("--write-quorum", "3"), "WRITE_QUORUM");
    expect_bad(two, ARGS("--write-quorum=-1"), "WRITE_QUORUM");
    expect_bad(two, ARGS("--write-quorum", "abc"), "WRITE_QUORUM");
    expect_bad(two, ARGS("--write-quorum", "1.5"), "WRITE_QUORUM");
    expect_bad(ENV({"FOLLOWERS", "tcp://a:1,tcp://b:2"}, {"WRITE_QUORUM", "3"}),
               NOARGS, "WRITE_QUORUM");
    expect_bad(ENV({"WRITE_QUORUM", "1"}), NOARGS, "WRITE_QUORUM");
    expect_bad(NOENV, ARGS("--role", "leader", "--write-quorum", "1"),
               "WRITE_QUORUM");
}

static void test_bad_delays(void) {
    expect_bad(ENV({"MIN_DELAY_MS", "100"}, {"MAX_DELAY_MS", "50"}), NOARGS,
               "DELAY");
    expect_bad(NOENV, ARGS("--min-delay=0.5", "--max-delay=0.1"), "DELAY");
    expect_bad_both("MIN_DELAY_MS", "--min-delay-ms", "-1");
    expect_bad_both("MAX_DELAY_MS", "--max-delay-ms", "abc");
    expect_bad_both("MIN_DELAY", "--min-delay", "-0.5");
    expect_bad_both("MAX_DELAY", "--max-delay", "abc");
    expect_bad_both("MAX_DELAY", "--max-delay", "1s");
    /* Both forms of one bound. */
    expect_bad(ENV({"MIN_DELAY_MS", "10"}, {"MIN_DELAY", "0.01"}), NOARGS,
               "MIN_DELAY");
    expect_bad(ENV({"MAX_DELAY_MS", "10"}, {"MAX_DELAY", "0.01"}), NOARGS,
               "MAX_DELAY");
    expect_bad(NOENV, ARGS("--min-delay-ms", "10", "--min-delay", "0.01"),
               "MIN_DELAY");
    expect_bad(NOENV, ARGS("--max-delay-ms=10", "--max-delay=0.01"),
               "MAX_DELAY");
}

static void test_bad_positive_ints(void) {
    const char *bad[] = {"0", "-5", "abc", "10x", NULL};
    for (size_t i = 0; bad[i]; i++) {
        expect_bad_both("REPLICATION_TIMEOUT_MS", "--replication-timeout-ms",
                        bad[i]);
        expect_bad_both("HEARTBEAT_MS", "--heartbeat-ms", bad[i]);
        expect_bad_both("HTTP_THREADS", "--http-threads", bad[i]);
    }
}

static void test_bad_limits(void) {
    const char *bad[] = {
        "0", "-1", "abc", "1099511627776", "99999999999999999999999", NULL};
    for (size_t i = 0; bad[i]; i++) {
        expect_bad_both("MAX_KEY_BYTES", "--max-key-bytes", bad[i]);
        expect_bad_both("MAX_VALUE_BYTES", "--max-value-bytes", bad[i]);
    }
}

static void test_bad_lengths(void) {
    char id[200], url[2000];
    memset(id, 'i', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    memcpy(url, "http://", 7);
    memset(url + 7, 'u', sizeof url - 8);
    url[sizeof url - 1] = '\0';
    expect_bad(ENV({"NODE_ID", id}), NOARGS, "NODE_ID");
    expect_bad(ENV({"ROLE", "follower"}, {"LEADER_URL", url}), NOARGS,
               "LEADER_URL");
}

static int s_add_suites(void) {
    static const kit_test_t valid[] = {
        KIT_TEST(test_defaults),
        KIT_TEST(test_null_getenv),
        KIT_TEST(test_quorum_default_with_followers),
        KIT_TEST(test_node_id_defaults),
        KIT_TEST(test_client_settings),
        KIT_TEST(test_durability_settings),
        KIT_TEST(test_bad_durability_settings),
        KIT_TEST(test_security_settings),
        KIT_TEST(test_speed_settings),
        KIT_TEST(test_bad_security_settings),
        KIT_TEST(test_client_keys_file),
        KIT_TEST(test_peers),
        KIT_TEST(test_bad_peers),
        KIT_TEST(test_every_flag),
        KIT_TEST(test_every_variable),
        KIT_TEST(test_flags_win),
        KIT_TEST(test_flag_forms),
        KIT_TEST(test_parse_again),
        KIT_TEST(test_delay_seconds),
        KIT_TEST(test_help),
        KIT_TEST(test_usage),
        KIT_TESTS_END};
    static const kit_test_t invalid[] = {
        KIT_TEST(test_bad_flags),           KIT_TEST(test_bad_role),
        KIT_TEST(test_bad_ports),           KIT_TEST(test_bad_followers),
        KIT_TEST(test_bad_client_settings), KIT_TEST(test_too_many_followers),
        KIT_TEST(test_bad_write_quorum),    KIT_TEST(test_bad_delays),
        KIT_TEST(test_bad_positive_ints),   KIT_TEST(test_bad_limits),
        KIT_TEST(test_bad_lengths),         KIT_TESTS_END};
    if (!kit_add_suite("config_valid", NULL, NULL, valid))
        return -1;
    return kit_add_suite("config_invalid", NULL, NULL, invalid) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
