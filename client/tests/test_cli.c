/*  test_cli.c - the qkv command-line tool against real clusters.

    Runs the built binary (env QKV_CLI_BIN) as a user would, against a
    leader with two followers: put, get, del, dump, health and check, in
    text and JSON, with their exit statuses. Divergence is real: a second,
    independent leader-only cluster is given other data and `qkv check`
    must count what differs. JSON output is parsed with jansson. A fake
    node (ckit_fake_t) answers conflict and session_expired, which a real
    node never says to the tool's fresh client_id. test_health's limits
    need the node of the same issue (merged).
*/
#include "ckit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NODES 3
#define CLI_TIMEOUT_MS 60000

static kit_cluster_t s_cluster;
static char s_tag[9];
static char s_ep[NODES][64]; /* client endpoints, leader first */

/*  ---------------------------------------------------------------------
    Running qkv */

typedef struct {
    int status; /* exit status, or -1 when it did not exit normally */
    char *out;  /* stdout, NUL-terminated */
    char *err;  /* stderr, NUL-terminated */
} s_run_t;

static const char *cli_bin(void) {
    const char *bin = getenv("QKV_CLI_BIN");
    if (!bin || !*bin)
        kit_skip("QKV_CLI_BIN is not set (run through ctest)", true);
    if (access(bin, X_OK) != 0)
        kit_skip("QKV_CLI_BIN is not executable", true);
    return bin;
}

static void s_append(char **buf, size_t *len, const char *data, size_t n) {
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Runs qkv with the arguments up to NULL, stdin from input (NULL: empty),
   and collects its output and exit status. */
static s_run_t run_input(const char *input, const char *arg, ...) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)cli_bin();
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 63; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    s_run_t run = {-1, NULL, NULL};
    size_t out_len = 0, err_len = 0;
    s_append(&run.out, &out_len, "", 0);
    s_append(&run.err, &err_len, "", 0);
    int in[2], out[2], err[2];
    if (pipe(in) || pipe(out) || pipe(err))
        return run;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        for (int fd = 3; fd < 64; fd++)
            close(fd);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (input) {
        signal(SIGPIPE, SIG_IGN);
        if (write(in[1], input, strlen(input)) < 0)
            perror("write");
    }
    close(in[1]);
    struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    int64_t deadline = kit_now_ms() + CLI_TIMEOUT_MS;
    while (open_fds > 0 && kit_now_ms() < deadline) {
        if (poll(fds, 2, 1000) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                if (i == 0)
                    s_append(&run.out, &out_len, buf, (size_t)n);
                else
                    s_append(&run.err, &err_len, buf, (size_t)n);
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    if (open_fds > 0)
        kill(pid, SIGKILL);
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int status = 0;
    waitpid(pid, &status, 0);
    run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (run.status != 0 && *run.err)
        fprintf(stderr, "\n  [qkv %s ... exit %d] %s", arg, run.status,
                run.err);
    return run;
}

#define run(...) run_input(NULL, __VA_ARGS__, NULL)

static void run_free(s_run_t *run) {
    free(run->out);
    free(run->err);
}

/* Parses stdout as one JSON object (new reference or NULL). */
static json_t *out_json(const s_run_t *run) {
    json_error_t error;
    json_t *obj = json_loads(run->out, 0, &error);
    if (!obj || !json_is_object(obj)) {
        fprintf(stderr, "\n  not a JSON object (%s): %s\n", error.text,
                run->out);
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static void key_of(char *key, size_t size, const char *name) {
    snprintf(key, size, "t%s-%s", s_tag, name);
}

/*  ---------------------------------------------------------------------
    Suite setup */

static int s_init(void) {
    cli_bin();
    kit_random_tag(s_tag);
    if (ckit_cluster_start(&s_cluster, NODES - 1, 1, NULL) != 0)
        return -1;
    for (size_t i = 0; i < NODES; i++)
        ckit_endpoint(&s_cluster.nodes[i], s_ep[i], sizeof s_ep[i]);
    unsetenv("QKV_ENDPOINT");
    return 0;
}

static int s_cleanup(void) {
    return kit_cluster_stop(&s_cluster) == 0 ? 0 : -1;
}

/*  ---------------------------------------------------------------------
    Tests */

static void test_help(void) {
    s_run_t r = run("--help");
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(strstr(r.out, "Usage: qkv") != NULL);
    run_free(&r);
    const char *commands[] = {"put", "get", "del", "dump", "health", "check"};
    for (size_t i = 0; i < 6; i++) {
        r = run(commands[i], "--help");
        CU_ASSERT_EQUAL(r.status, 0);
        CU_ASSERT(strstr(r.out, commands[i]) != NULL);
        run_free(&r);
        r = run("-h", commands[i]);
        CU_ASSERT_EQUAL(r.status, 0);
        run_free(&r);
    }
    /* Usage errors: exit 2 with a message */
    const char *bad[][3] = {{"bogus", NULL, NULL},
                            {"get", NULL, NULL},
                            {"put", "k", NULL},
                            {"check", "tcp://127.0.0.1:1", NULL},
                            {"--timeout-ms", "x", "health"},
                            {"--nope", "health", NULL},
                            {"--wait-ms", "5", "health"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_input(NULL, bad[i][0], bad[i][1], bad[i][2], NULL);
        CU_ASSERT_EQUAL(r.status, 2);
        CU_ASSERT(*r.err != '\0');
        run_free(&r);
    }
    r = run_input(NULL, NULL);
    CU_ASSERT_EQUAL(r.status, 2);
    run_free(&r);
}

static void test_put_get_del(void) {
    char key[64];
    key_of(key, sizeof key, "cli");
    s_run_t r = run("-e", s_ep[0], "put", key, "hello world");
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(strstr(r.out, "OK seq 1") != NULL);
    run_free(&r);

    r = run("-e", s_ep[0], "get", key);
    CU_ASSERT_EQUAL(r.status, 0);
    KIT_ASSERT_STR(r.out, "hello world\n");
    run_free(&r);

    /* JSON, options after the command */
    r = run("put", key, "second", "--json", "--endpoint", s_ep[0]);
    CU_ASSERT_EQUAL(r.status, 0);
    json_t *j = out_json(&r);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT(json_is_true(json_object_get(j, "ok")));
    KIT_ASSERT_STR(kit_json_str(j, "key"), key);
    uint64_t seq = 0, index = 0;
    CU_ASSERT(kit_json_u64(j, "seq", &seq) && seq == 2);
    CU_ASSERT(kit_json_u64(j, "index", &index) && index > 0);
    json_decref(j);
    run_free(&r);

    r = run("-e", s_ep[0], "--json", "get", key);
    CU_ASSERT_EQUAL(r.status, 0);
    j = out_json(&r);
    CU_ASSERT_FATAL(j != NULL);
    KIT_ASSERT_STR(kit_json_str(j, "key"), key);
    KIT_ASSERT_STR(kit_json_str(j, "value"), "second");
    uint64_t got = 0;
    CU_ASSERT(kit_json_u64(j, "seq", &got) && got == 2);
    CU_ASSERT(kit_json_u64(j, "index", &got) && got == index);
    json_decref(j);
    run_free(&r);

    /* The value from stdin */
    r = run_input("from\nstdin", "-e", s_ep[0], "put", key, "-", NULL);
    CU_ASSERT_EQUAL(r.status, 0);
    run_free(&r);
    r = run("-e", s_ep[0], "get", key);
    KIT_ASSERT_STR(r.out, "from\nstdin\n");
    run_free(&r);

    r = run("-e", s_ep[0], "del", key);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(strstr(r.out, "deleted") != NULL);
    run_free(&r);

    /* Gone: get and del say not found with exit 1 */
    r = run("-e", s_ep[0], "get", key);
    CU_ASSERT_EQUAL(r.status, 1);
    CU_ASSERT(strstr(r.err, "not found") != NULL);
    KIT_ASSERT_STR(r.out, "");
    run_free(&r);
    r = run("-e", s_ep[0], "--json", "get", key);
    CU_ASSERT_EQUAL(r.status, 1);
    j = out_json(&r);
    CU_ASSERT(j && json_is_false(json_object_get(j, "ok")));
    KIT_ASSERT_STR(kit_json_str(j, "status"), "not_found");
    json_decref(j);
    run_free(&r);
    r = run("-e", s_ep[0], "--json", "del", key);
    CU_ASSERT_EQUAL(r.status, 1);
    j = out_json(&r);
    CU_ASSERT(j && json_is_false(json_object_get(j, "deleted")));
    json_decref(j);
    run_free(&r);
}

static void test_endpoint_from_env_and_follower(void) {
    char key[64];
    key_of(key, sizeof key, "env");
    /* QKV_ENDPOINT names a follower: the write is redirected to the
       leader, the read then waits for the write's index there. */
    setenv("QKV_ENDPOINT", s_ep[1], 1);
    s_run_t r = run("--json", "put", key, "through-follower");
    CU_ASSERT_EQUAL(r.status, 0);
    json_t *j = out_json(&r);
    uint64_t index = 0;
    CU_ASSERT(j && kit_json_u64(j, "index", &index));
    json_decref(j);
    run_free(&r);
    char min[32];
    snprintf(min, sizeof min, "%llu", (unsigned long long)index);
    r = run("get", "--min-index", min, key);
    CU_ASSERT_EQUAL(r.status, 0);
    KIT_ASSERT_STR(r.out, "through-follower\n");
    run_free(&r);
    r = run("--json", "health");
    CU_ASSERT_EQUAL(r.status, 0);
    j = out_json(&r);
    KIT_ASSERT_STR(j ? kit_json_str(j, "role") : NULL, "follower");
    json_decref(j);
    run_free(&r);
    unsetenv("QKV_ENDPOINT");
}

static void test_dump(void) {
    char k1[64], k2[64];
    key_of(k1, sizeof k1, "dump-plain");
    key_of(k2, sizeof k2, "dump-\"quoted\"");
    const char *tricky = "tab\there \"quote\" back\\slash \xc3\xa9t\xc3\xa9 "
                         "\x01 end";
    s_run_t r = run("-e", s_ep[0], "put", k1, "plain");
    CU_ASSERT_EQUAL(r.status, 0);
    run_free(&r);
    r = run("-e", s_ep[0], "put", k2, tricky);
    CU_ASSERT_EQUAL(r.status, 0);
    run_free(&r);

    r = run("-e", s_ep[0], "dump");
    CU_ASSERT_EQUAL(r.status, 0);
    char line[128];
    snprintf(line, sizeof line, "%s\tplain\n", k1);
    CU_ASSERT(strstr(r.out, line) != NULL);
    run_free(&r);

    r = run("-e", s_ep[0], "dump", "--json");
    CU_ASSERT_EQUAL(r.status, 0);
    json_t *j = out_json(&r);
    CU_ASSERT_FATAL(j != NULL);
    json_t *entries = json_object_get(j, "entries");
    CU_ASSERT_FATAL(json_is_object(entries));
    json_t *e1 = json_object_get(entries, k1);
    json_t *e2 = json_object_get(entries, k2);
    KIT_ASSERT_STR(e1 ? kit_json_str(e1, "value") : NULL, "plain");
    KIT_ASSERT_STR(e2 ? kit_json_str(e2, "value") : NULL, tricky);
    uint64_t count = 0, applied = 0;
    CU_ASSERT(kit_json_u64(j, "count", &count) &&
              count == json_object_size(entries));
    CU_ASSERT(kit_json_u64(j, "applied_index", &applied) && applied > 0);
    json_decref(j);
    run_free(&r);
}

/* `qkv get --json` and GET /get escape a value the same way: the bytes
   E2 82 (a truncated three-byte sequence) become one U+FFFD in both. */
static void test_json_matches_rest(void) {
    char key[64];
    key_of(key, sizeof key, "ill-formed");
    s_run_t r = run("-e", s_ep[0], "put", key,
                    "a\xe2\x82"
                    "b\x7f");
    CU_ASSERT_EQUAL(r.status, 0);
    run_free(&r);
    r = run("-e", s_ep[0], "--json", "get", key);
    CU_ASSERT_EQUAL(r.status, 0);
    const char *want = "\"value\":\"a\\ufffdb\x7f\"";
    if (!strstr(r.out, want))
        fprintf(stderr, "\n  qkv get --json printed %s", r.out);
    CU_ASSERT(strstr(r.out, want) != NULL);
    run_free(&r);
    char url[512];
    snprintf(url, sizeof url, "%s/get?key=%s", s_cluster.nodes[0].url, key);
    long status = 0;
    char *body = NULL;
    CU_ASSERT_EQUAL_FATAL(kit_http_get(url, &status, &body), 0);
    CU_ASSERT_EQUAL(status, 200);
    if (!body || !strstr(body, want))
        fprintf(stderr, "\n  GET /get answered %s", body ? body : "");
    CU_ASSERT(body && strstr(body, want) != NULL);
    free(body);
}

static void test_health(void) {
    s_run_t r = run("-e", s_ep[0], "health");
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(strstr(r.out, "leader") != NULL);
    CU_ASSERT(strstr(r.out, "max_key_bytes:   4096\n") != NULL);
    CU_ASSERT(strstr(r.out, "max_value_bytes: 1048576\n") != NULL);
    CU_ASSERT(strstr(r.out, "max_frame_bytes: ") != NULL);
    run_free(&r);
    r = run("-e", s_ep[0], "health", "--json");
    CU_ASSERT_EQUAL(r.status, 0);
    json_t *j = out_json(&r);
    CU_ASSERT_FATAL(j != NULL);
    KIT_ASSERT_STR(kit_json_str(j, "status"), "ok");
    KIT_ASSERT_STR(kit_json_str(j, "role"), "leader");
    CU_ASSERT(kit_json_str(j, "id") != NULL);
    CU_ASSERT(kit_json_str(j, "replication_id") != NULL);
    uint64_t n;
    CU_ASSERT(kit_json_u64(j, "last_index", &n));
    CU_ASSERT(kit_json_u64(j, "commit_index", &n));
    CU_ASSERT(kit_json_u64(j, "applied_index", &n));
    /* the node's limits: the defaults it was started with */
    CU_ASSERT(kit_json_u64(j, "max_key_bytes", &n) && n == 4096);
    CU_ASSERT(kit_json_u64(j, "max_value_bytes", &n) && n == 1u << 20);
    CU_ASSERT(kit_json_u64(j, "max_frame_bytes", &n) && n >= 4096 + (1u << 20));
    json_t *followers = json_object_get(j, "followers");
    CU_ASSERT(json_is_array(followers) &&
              json_array_size(followers) == NODES - 1);
    json_decref(j);
    run_free(&r);
}

/* A fake node's put answers: conflict for keys starting with c,
   session_expired for the others. */
static bool s_refuse_puts(const qkv_creq_t *req, qkv_cres_t *res, void *arg) {
    (void)arg;
    bool conflict = req->key_len && req->key[0] == 'c';
    res->status = req->op != QKV_COP_PUT ? QKV_CS_BAD_REQUEST
                  : conflict             ? QKV_CS_CONFLICT
                                         : QKV_CS_SESSION_EXPIRED;
    res->message = conflict ? "pair reused" : "pair too old";
    res->message_len = strlen(res->message);
    return true;
}

static void test_conflict_and_expired(void) {
    ckit_fake_t *fake = ckit_fake_new(s_refuse_puts, NULL);
    CU_ASSERT_FATAL(fake != NULL);
    const char *ep = ckit_fake_endpoint(fake);
    struct {
        const char *key, *word, *text, *message;
    } cases[] = {{"c1", "conflict", "conflict", "pair reused"},
                 {"s1", "session_expired", "session expired", "pair too old"}};
    for (size_t i = 0; i < 2; i++) {
        s_run_t r = run("-e", ep, "put", cases[i].key, "v");
        CU_ASSERT_EQUAL(r.status, 2);
        CU_ASSERT(strstr(r.err, cases[i].text) != NULL);
        CU_ASSERT(strstr(r.err, cases[i].message) != NULL);
        CU_ASSERT(*r.out == '\0');
        run_free(&r);
        r = run("-e", ep, "--json", "put", cases[i].key, "v");
        CU_ASSERT_EQUAL(r.status, 2);
        json_t *j = out_json(&r);
        CU_ASSERT(j && json_is_false(json_object_get(j, "ok")));
        KIT_ASSERT_STR(j ? kit_json_str(j, "status") : NULL, cases[i].word);
        KIT_ASSERT_STR(j ? kit_json_str(j, "message") : NULL, cases[i].message);
        json_decref(j);
        run_free(&r);
    }
    ckit_fake_destroy(&fake);
}

static void test_errors(void) {
    char dead[64];
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", kit_free_port());
    s_run_t r = run("-e", dead, "--timeout-ms", "500", "get", "k");
    CU_ASSERT_EQUAL(r.status, 2);
    CU_ASSERT(strstr(r.err, "timed out") != NULL);
    run_free(&r);
    r = run("-e", dead, "-t", "500", "--json", "put", "k", "v");
    CU_ASSERT_EQUAL(r.status, 2);
    json_t *j = out_json(&r);
    CU_ASSERT(j && json_is_false(json_object_get(j, "ok")));
    KIT_ASSERT_STR(j ? kit_json_str(j, "status") : NULL, "timeout");
    json_decref(j);
    run_free(&r);
    r = run("-e", "not-an-endpoint", "health");
    CU_ASSERT_EQUAL(r.status, 2);
    CU_ASSERT(*r.err != '\0');
    run_free(&r);
    /* An unreachable follower is an error, not a divergence */
    r = run("-t", "500", "check", "--wait-ms", "100", s_ep[0], dead);
    CU_ASSERT_EQUAL(r.status, 2);
    run_free(&r);
}

static void test_check_identical(void) {
    uint64_t index = 0;
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, &index));
    s_run_t r = run("check", s_ep[0], s_ep[1], s_ep[2]);
    CU_ASSERT_EQUAL(r.status, 0);
    char line[160];
    for (size_t i = 1; i < NODES; i++) {
        snprintf(line, sizeof line, "follower %s: 100.00%% identical", s_ep[i]);
        CU_ASSERT(strstr(r.out, line) != NULL);
    }
    CU_ASSERT(strstr(r.out, "0 missing, 0 mismatched, 0 extra") != NULL);
    run_free(&r);

    r = run("--json", "check", s_ep[0], s_ep[1], s_ep[2]);
    CU_ASSERT_EQUAL(r.status, 0);
    json_t *j = out_json(&r);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT(json_is_true(json_object_get(j, "identical")));
    json_t *followers = json_object_get(j, "followers");
    CU_ASSERT_FATAL(json_array_size(followers) == NODES - 1);
    for (size_t i = 0; i < NODES - 1; i++) {
        json_t *f = json_array_get(followers, i);
        uint64_t n = 1;
        CU_ASSERT(kit_json_u64(f, "missing", &n) && n == 0);
        CU_ASSERT(json_is_true(json_object_get(f, "caught_up")));
        CU_ASSERT(json_number_value(json_object_get(f, "identical_pct")) ==
                  100.0);
    }
    json_decref(j);
    run_free(&r);
}

static void put_via(qkv_client_t *c, const char *key, const char *value) {
    int rc = qkv_put(c, key, strlen(key), value, strlen(value), NULL);
    if (rc)
        fprintf(stderr, "\n  put %s: %s\n", key, qkv_client_errmsg(c));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/* Last: it resets the cluster. A second cluster, one leader and no
   followers, holds other data; check must count the differences. */
static void test_check_divergence(void) {
    kit_cluster_t other;
    CU_ASSERT_FATAL(ckit_cluster_start(&other, 0, -1, NULL) == 0);
    char other_ep[64];
    ckit_endpoint(&other.nodes[0], other_ep, sizeof other_ep);

    qkv_client_options_t options = {.timeout_ms = CKIT_WAIT_MS};
    qkv_client_t *a = ckit_client(s_ep[0], &options);
    qkv_client_t *b = ckit_client(other_ep, &options);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL_FATAL(qkv_reset(a, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(qkv_reset(b, NULL), 0);
    /* A: k1..k4. B: k1 the same, k2 different, k5 extra; k3, k4 missing */
    put_via(a, "k1", "one");
    put_via(a, "k2", "two");
    put_via(a, "k3", "three");
    put_via(a, "k4", "four");
    put_via(b, "k1", "one");
    put_via(b, "k2", "TWO");
    put_via(b, "k5", "five");
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, NULL));

    s_run_t r = run("check", "--wait-ms", "300", s_ep[0], other_ep);
    CU_ASSERT_EQUAL(r.status, 1);
    char line[200];
    snprintf(line, sizeof line,
             "follower %s: 25.00%% identical (1 keys), 2 missing, "
             "1 mismatched, 1 extra",
             other_ep);
    CU_ASSERT(strstr(r.out, line) != NULL);
    if (!strstr(r.out, line))
        fprintf(stderr, "\n  got: %s\n", r.out);
    run_free(&r);

    /* The real followers are identical, the stranger is not */
    r = run("--json", "check", "--wait-ms", "300", s_ep[0], s_ep[1], other_ep,
            s_ep[2]);
    CU_ASSERT_EQUAL(r.status, 1);
    json_t *j = out_json(&r);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT(json_is_false(json_object_get(j, "identical")));
    json_t *followers = json_object_get(j, "followers");
    CU_ASSERT_FATAL(json_array_size(followers) == 3);
    uint64_t n = 99;
    json_t *f = json_array_get(followers, 0);
    CU_ASSERT(json_is_true(json_object_get(f, "identical")));
    f = json_array_get(followers, 1);
    KIT_ASSERT_STR(kit_json_str(f, "endpoint"), other_ep);
    CU_ASSERT(json_is_false(json_object_get(f, "identical")));
    CU_ASSERT(kit_json_u64(f, "identical_keys", &n) && n == 1);
    CU_ASSERT(kit_json_u64(f, "missing", &n) && n == 2);
    CU_ASSERT(kit_json_u64(f, "mismatched", &n) && n == 1);
    CU_ASSERT(kit_json_u64(f, "extra", &n) && n == 1);
    CU_ASSERT(kit_json_u64(f, "keys", &n) && n == 3);
    f = json_array_get(followers, 2);
    CU_ASSERT(json_is_true(json_object_get(f, "identical")));
    json_decref(j);
    run_free(&r);

    /* Once B holds the same entries, written the same number of times,
       check agrees */
    put_via(b, "k3", "three");
    put_via(b, "k4", "four");
    CU_ASSERT_EQUAL(qkv_delete(b, "k5", 2, NULL), 0);
    CU_ASSERT_EQUAL(qkv_delete(b, "k2", 2, NULL), 0);
    put_via(b, "k2", "two");
    r = run("check", "--wait-ms", "300", s_ep[0], other_ep);
    CU_ASSERT_EQUAL(r.status, 0);
    run_free(&r);

    qkv_client_destroy(&a);
    qkv_client_destroy(&b);
    CU_ASSERT_EQUAL(kit_cluster_stop(&other), 0);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_help),
        KIT_TEST(test_put_get_del),
        KIT_TEST(test_endpoint_from_env_and_follower),
        KIT_TEST(test_dump),
        KIT_TEST(test_json_matches_rest),
        KIT_TEST(test_health),
        KIT_TEST(test_errors),
        KIT_TEST(test_conflict_and_expired),
        KIT_TEST(test_check_identical),
        KIT_TEST(test_check_divergence),
        KIT_TESTS_END};
    return kit_add_suite("qkv-cli", s_init, s_cleanup, tests) ? 0 : -1;
}

int main(void) {
    kit_node_bin(); /* skips (77) when there is no node to start */
    cli_bin();
    return kit_run(s_add_suites);
}
