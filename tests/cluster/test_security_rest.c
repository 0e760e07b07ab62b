/*  test_security_rest.c - REST access control, TLS and the REST limits
    (HTTP_TOKENS_FILE, TLS_CERT_FILE, TLS_KEY_FILE, MAX_BODY_BYTES,
    REQUEST_TIMEOUT_MS) on real qkv-node processes.

    Two leaders without followers: "tokens" reads a tokens file (mode
    0600) written by the suite, "open" has none and small limits
    (MAX_BODY_BYTES 4096, REQUEST_TIMEOUT_MS 500) for the body and slow
    client checks, done over raw sockets. Nodes that must refuse to start
    (a tokens file others may read, a bad line, a missing certificate)
    are started and must exit with a message that names the problem and
    never shows a token. TLS: a self-signed certificate made with the
    openssl command (the suite is skipped without it); the node must
    serve https and refuse plain http (on Debian bookworm through
    libqkv-ssl-compat.so: civetweb 1.15 cannot load OpenSSL 3 alone).
*/
#include "kit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT_MS 500 /* REQUEST_TIMEOUT_MS of the "open" node */
#define MAX_BODY 4096  /* MAX_BODY_BYTES of the "open" node */
#define START_MS 20000 /* for a node to answer /health (ASan, 2 cores) */

static kit_node_t s_tokens_node, s_open_node;
static char s_dir[64]; /* the suite's files: tokens, certificates */
static char s_tokens_path[128];
static char s_read[64], s_write[64]; /* the two tokens */
static char s_tag[9];

static const char *tokens_url(void) {
    return s_tokens_node.url;
}

static const char *open_url(void) {
    return s_open_node.url;
}

/*  ---------------------------------------------------------------------
    Helpers */

/* Writes text to path with mode (exactly: umask does not apply). */
static int write_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    return chmod(path, mode);
}

/* The node's log as a malloc'd string ("" when unreadable). */
static char *read_log(const kit_node_t *node) {
    FILE *f = fopen(node->log_path, "r");
    char *text = NULL;
    size_t size = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        text = malloc((size_t)(n > 0 ? n : 0) + 1);
        if (text)
            size = fread(text, 1, (size_t)(n > 0 ? n : 0), f);
        fclose(f);
    }
    if (!text)
        return strdup("");
    text[size] = '\0';
    return text;
}

/* True when the log of node contains word. */
static bool log_has(const kit_node_t *node, const char *word) {
    char *text = read_log(node);
    bool has = strstr(text, word) != NULL;
    free(text);
    return has;
}

/* Sends method path with body on this thread's token; returns the answer
   (status 0 when none). */
static void request(const char *method, const char *base, const char *path,
                    const char *body, kit_resp_t *resp) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    if (kit_http(method, url, body, body ? strlen(body) : 0, resp) != 0)
        memset(resp, 0, sizeof *resp);
}

/* Expects status and, for an error, the JSON status word. */
static void expect(const char *method, const char *base, const char *path,
                   const char *body, long code, const char *word) {
    kit_resp_t resp;
    request(method, base, path, body, &resp);
    if (resp.status != code)
        fprintf(stderr, "\n  %s %s answered %ld, expected %ld: %.200s\n",
                method, path, resp.status, code, resp.body ? resp.body : "");
    CU_ASSERT_EQUAL(resp.status, code);
    if (word) {
        json_t *json = kit_json_parse(resp.body, resp.body_len);
        CU_ASSERT(json_is_false(json_object_get(json, "ok")));
        KIT_ASSERT_STR(kit_json_str(json, "status"), word);
        CU_ASSERT(kit_json_str(json, "message") != NULL);
        json_decref(json);
    }
    kit_resp_free(&resp);
}

/* The key of this run for name. */
static void key_of(char *key, size_t size, const char *name) {
    snprintf(key, size, "t%s-%s", s_tag, name);
}

/* A 24-character random token. */
static void random_token(char *token, const char *prefix) {
    char a[9], b[9];
    kit_random_tag(a);
    kit_random_tag(b);
    sprintf(token, "%s-%s%s", prefix, a, b);
}

/* Starts node (already given its arguments) and waits until /health
   answers; 0 or -1. */
static int start_node(kit_node_t *node) {
    if (kit_node_start(node) != 0)
        return -1;
    return kit_node_wait_healthy(node, START_MS);
}

/* Starts a node that must refuse to start: true when it exited by itself
   with a code other than 0 and its log has every word of words (NULL
   terminated) and none of the tokens. */
static bool refuses_to_start(kit_node_t *node, const char *const *words) {
    CU_ASSERT_FATAL(kit_node_start(node) == 0);
    int64_t deadline = kit_now_ms() + START_MS;
    while (kit_node_running(node) && kit_now_ms() < deadline)
        usleep(20000);
    bool exited = node->pid <= 0;
    if (!exited) {
        fprintf(stderr, "\n  node %s started; it should have refused\n",
                node->name);
        kit_node_stop(node, 5000);
    }
    int code = node->crash_code;
    bool ok = exited && code > 0;
    for (size_t i = 0; words[i]; i++) {
        if (!log_has(node, words[i])) {
            fprintf(stderr, "\n  node %s: its log lacks \"%s\"\n", node->name,
                    words[i]);
            ok = false;
        }
    }
    if (log_has(node, s_read) || log_has(node, s_write)) {
        fprintf(stderr, "\n  node %s logged a token\n", node->name);
        ok = false;
    }
    if (!ok)
        kit_node_print_log(node, 2000);
    return ok;
}

/*  ---------------------------------------------------------------------
    Raw sockets: slow clients */

static int connect_port(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    CU_ASSERT_FATAL(fd >= 0);
    return fd;
}

static void send_text(int fd, const char *text) {
    CU_ASSERT(send(fd, text, strlen(text), MSG_NOSIGNAL) ==
              (ssize_t)strlen(text));
}

/* Reads what the server sends until it closes the connection or
   limit_ms pass. Returns the time it closed, in ms after since (-1 when
   it did not); what it sent goes to got (size bytes, NUL-terminated).
   When drip_ms > 0, one more byte ("x") is sent every drip_ms meanwhile,
   as a client that trickles its body. */
static int64_t wait_closed(int fd, int64_t since, int limit_ms, int drip_ms,
                           char *got, size_t size) {
    size_t used = 0;
    int64_t deadline = since + limit_ms;
    int64_t next_drip = drip_ms > 0 ? kit_now_ms() + drip_ms : INT64_MAX;
    got[0] = '\0';
    for (;;) {
        int64_t now = kit_now_ms();
        if (now >= deadline)
            return -1;
        if (now >= next_drip) {
            send(fd, "x", 1, MSG_NOSIGNAL);
            next_drip = now + drip_ms;
        }
        int64_t wait = (next_drip < deadline ? next_drip : deadline) - now;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)wait) <= 0)
            continue;
        char chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0)
            return kit_now_ms() - since;
        size_t take = (size_t)n < size - 1 - used ? (size_t)n : size - 1 - used;
        memcpy(got + used, chunk, take);
        used += take;
        got[used] = '\0';
    }
}

/*  ---------------------------------------------------------------------
    Access control */

/* No token: 401 with a challenge, and nothing is written. */
static void test_no_token(void) {
    char key[64], body[160], path[160];
    key_of(key, sizeof key, "no-token");
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"v\"}", key);
    snprintf(path, sizeof path, "/get?key=%s", key);
    kit_http_set_token(NULL);
    kit_resp_t resp;
    request("POST", tokens_url(), "/put", body, &resp);
    CU_ASSERT_EQUAL(resp.status, 401);
    CU_ASSERT(resp.www_authenticate != NULL &&
              strcmp(resp.www_authenticate, "Bearer realm=\"qkv\"") == 0);
    kit_resp_free(&resp);
    expect("POST", tokens_url(), "/put", body, 401, "unauthorized");
    expect("POST", tokens_url(), "/write", body, 401, "unauthorized");
    expect("POST", tokens_url(), "/delete", body, 401, "unauthorized");
    expect("POST", tokens_url(), "/reset", NULL, 401, "unauthorized");
    expect("POST", tokens_url(), "/admin/transfer-leader", "{\"to\":\"x\"}",
           401, "unauthorized");
    expect("GET", tokens_url(), path, NULL, 401, "unauthorized");
    expect("GET", tokens_url(), "/dump", NULL, 401, "unauthorized");
    expect("GET", tokens_url(), "/metrics", NULL, 401, "unauthorized");
    /* routes and methods are no secret: 404 and 405 as without tokens */
    expect("GET", tokens_url(), "/nowhere", NULL, 404, "not_found");
    expect("GET", tokens_url(), "/put", NULL, 405, "method_not_allowed");
    /* nothing was written */
    kit_http_set_token(s_read);
    expect("GET", tokens_url(), path, NULL, 404, "not_found");
    kit_http_set_token(NULL);
}

/* A token not in the file, or not sent as "Bearer TOKEN": 401. */
static void test_wrong_token(void) {
    char key[64], body[160], path[160];
    key_of(key, sizeof key, "wrong-token");
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"v\"}", key);
    snprintf(path, sizeof path, "/get?key=%s", key);
    char wrong[64];
    snprintf(wrong, sizeof wrong, "%s", s_write);
    wrong[strlen(wrong) - 1] ^= 1; /* the last character differs */
    kit_http_set_token(wrong);
    kit_resp_t resp;
    request("POST", tokens_url(), "/put", body, &resp);
    CU_ASSERT_EQUAL(resp.status, 401);
    CU_ASSERT(resp.www_authenticate != NULL &&
              strstr(resp.www_authenticate, "invalid_token") != NULL);
    kit_resp_free(&resp);
    expect("GET", tokens_url(), path, NULL, 401, "unauthorized");
    kit_http_set_token("short");
    expect("GET", tokens_url(), path, NULL, 401, "unauthorized");
    kit_http_set_token(s_read);
    expect("GET", tokens_url(), path, NULL, 404, "not_found");
    kit_http_set_token(NULL);
}

/* A read token reads (and /metrics) but writes nothing: 403. */
static void test_read_token(void) {
    char key[64], body[160], path[160];
    key_of(key, sizeof key, "read-token");
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"v\"}", key);
    snprintf(path, sizeof path, "/get?key=%s", key);
    kit_http_set_token(s_read);
    expect("GET", tokens_url(), path, NULL, 404, "not_found");
    kit_resp_t resp;
    request("POST", tokens_url(), "/put", body, &resp);
    CU_ASSERT_EQUAL(resp.status, 403);
    CU_ASSERT(resp.www_authenticate != NULL &&
              strstr(resp.www_authenticate, "insufficient_scope") != NULL);
    kit_resp_free(&resp);
    expect("POST", tokens_url(), "/put", body, 403, "forbidden");
    expect("POST", tokens_url(), "/write", body, 403, "forbidden");
    expect("POST", tokens_url(), "/delete", body, 403, "forbidden");
    expect("POST", tokens_url(), "/reset", NULL, 403, "forbidden");
    expect("GET", tokens_url(), "/dump", NULL, 403, "forbidden");
    expect("GET", tokens_url(), "/metrics", NULL, 200, NULL);
    expect("GET", tokens_url(), path, NULL, 404, "not_found");
    kit_http_set_token(NULL);
}

/* A write token writes; read tokens see it. */
static void test_write_token(void) {
    char key[64];
    key_of(key, sizeof key, "write-token");
    kit_http_set_token(s_write);
    long status = 0;
    json_t *r = kit_qkv_write(tokens_url(), "/put", key, "v1", &status, NULL);
    CU_ASSERT_EQUAL(status, 200);
    json_decref(r);
    CU_ASSERT(kit_qkv_holds(tokens_url(), key, "v1", 1));
    json_t *dump = kit_qkv_dump(tokens_url(), &status);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT(json_object_get(json_object_get(dump, "entries"), key) != NULL);
    json_decref(dump);
    kit_http_set_token(s_read);
    CU_ASSERT(kit_qkv_holds(tokens_url(), key, "v1", 1));
    kit_http_set_token(NULL);
}

/* /health is open: status and role only, unless a valid token is sent. */
static void test_health(void) {
    const char *tokens[] = {NULL, "not-a-token-of-this-node", s_read, s_write};
    for (size_t i = 0; i < 4; i++) {
        kit_http_set_token(tokens[i]);
        long status = 0;
        json_t *h = kit_qkv_health(tokens_url(), &status);
        CU_ASSERT_EQUAL(status, 200);
        CU_ASSERT_FATAL(h != NULL);
        KIT_ASSERT_STR(kit_json_str(h, "status"), "ok");
        KIT_ASSERT_STR(kit_json_str(h, "role"), "leader");
        if (i < 2) {
            CU_ASSERT_EQUAL(json_object_size(h), 2);
        } else {
            CU_ASSERT(kit_json_str(h, "id") != NULL);
            CU_ASSERT(json_object_get(h, "last_index") != NULL);
            CU_ASSERT(json_object_get(h, "followers") != NULL);
        }
        json_decref(h);
    }
    kit_http_set_token(NULL);
}

/* 401s and 403s are counted; no token ever reaches the log. */
static void test_denied_metrics(void) {
    kit_http_set_token(s_read);
    char *text = NULL;
    long status = 0;
    char url[300];
    snprintf(url, sizeof url, "%s/metrics", tokens_url());
    CU_ASSERT_EQUAL(kit_http_get(url, &status, &text), 0);
    CU_ASSERT_EQUAL(status, 200);
    char why[256] = "";
    CU_ASSERT(text && kit_prom_check(text, why, sizeof why));
    double unauthorized = 0, forbidden = 0;
    CU_ASSERT(text &&
              kit_prom_value(text,
                             "qkv_http_denied_total{reason=\"unauthorized\"}",
                             &unauthorized));
    CU_ASSERT(text && kit_prom_value(
                          text, "qkv_http_denied_total{reason=\"forbidden\"}",
                          &forbidden));
    /* at least the refusals of the tests before this one */
    CU_ASSERT(unauthorized >= 10);
    CU_ASSERT(forbidden >= 6);
    free(text);
    kit_http_set_token(NULL);
    CU_ASSERT(!log_has(&s_tokens_node, s_read));
    CU_ASSERT(!log_has(&s_tokens_node, s_write));
}

/* Without HTTP_TOKENS_FILE every route is open, as before. */
static void test_open_without_tokens(void) {
    char key[64];
    key_of(key, sizeof key, "open");
    kit_http_set_token(NULL);
    long status = 0;
    json_t *r = kit_qkv_write(open_url(), "/put", key, "v", &status, NULL);
    CU_ASSERT_EQUAL(status, 200);
    json_decref(r);
    CU_ASSERT(kit_qkv_holds(open_url(), key, "v", 1));
    json_t *h = kit_qkv_health(open_url(), &status);
    CU_ASSERT(h && json_object_get(h, "last_index") != NULL);
    json_decref(h);
    expect("GET", open_url(), "/metrics", NULL, 200, NULL);
    expect("GET", open_url(), "/dump", NULL, 200, NULL);
}

/*  ---------------------------------------------------------------------
    Nodes that refuse to start */

static void test_tokens_file_open_to_others(void) {
    char path[160], port[16];
    snprintf(path, sizeof path, "%s/tokens-0644", s_dir);
    char text[200];
    snprintf(text, sizeof text, "read %s\nwrite %s\n", s_read, s_write);
    CU_ASSERT_FATAL(write_file(path, text, 0644) == 0);
    kit_node_t node;
    kit_node_init(&node, "mode-0644", kit_free_port(), 0);
    snprintf(port, sizeof port, "%d", node.port);
    kit_node_args(&node, "--role", "leader", "--port", port,
                  "--http-tokens-file", path, NULL);
    const char *words[] = {"HTTP_TOKENS_FILE", path, "0644", "chmod 600", NULL};
    CU_ASSERT(refuses_to_start(&node, words));
    kit_node_free(&node);
}

static void test_tokens_file_bad_line(void) {
    char path[160], port[16];
    snprintf(path, sizeof path, "%s/tokens-bad", s_dir);
    char text[300];
    snprintf(text, sizeof text,
             "# two good lines, then one too short\nread %s\nwrite %s\n"
             "write short\n",
             s_read, s_write);
    CU_ASSERT_FATAL(write_file(path, text, 0600) == 0);
    kit_node_t node;
    kit_node_init(&node, "bad-line", kit_free_port(), 0);
    snprintf(port, sizeof port, "%d", node.port);
    kit_node_args(&node, "--role", "leader", "--port", port,
                  "--http-tokens-file", path, NULL);
    char where[200];
    snprintf(where, sizeof where, "%s:4:", path);
    const char *words[] = {where, "16 to 256", NULL};
    CU_ASSERT(refuses_to_start(&node, words));
    CU_ASSERT(!log_has(&node, "short"));
    kit_node_free(&node);
}

/*  ---------------------------------------------------------------------
    Limits */

/* A body over MAX_BODY_BYTES: 413 naming the limit; at the limit: fine. */
static void test_max_body(void) {
    char key[64];
    key_of(key, sizeof key, "max-body");
    size_t size = MAX_BODY + 100;
    char *body = malloc(size + 1);
    CU_ASSERT_FATAL(body != NULL);
    int head = snprintf(body, size, "{\"key\":\"%s\",\"value\":\"", key);
    memset(body + head, 'v', size - (size_t)head - 2);
    memcpy(body + size - 2, "\"}", 2);
    body[size] = '\0';
    kit_resp_t resp;
    request("POST", open_url(), "/put", body, &resp);
    CU_ASSERT_EQUAL(resp.status, 413);
    json_t *json = kit_json_parse(resp.body, resp.body_len);
    KIT_ASSERT_STR(kit_json_str(json, "status"), "too_large");
    const char *message = kit_json_str(json, "message");
    CU_ASSERT(message && strstr(message, "MAX_BODY_BYTES") &&
              strstr(message, "4096"));
    json_decref(json);
    kit_resp_free(&resp);
    /* exactly MAX_BODY_BYTES */
    memmove(body + MAX_BODY - 2, "\"}", 3);
    request("POST", open_url(), "/put", body, &resp);
    CU_ASSERT_EQUAL(resp.status, 200);
    kit_resp_free(&resp);
    free(body);
}

/* Half the headers, then nothing: closed after REQUEST_TIMEOUT_MS, within
   twice that; other clients are served meanwhile. */
static void test_slow_headers(void) {
    int fd = connect_port(s_open_node.port);
    int64_t start = kit_now_ms();
    send_text(fd, "GET /health HTTP/1.1\r\nHost: qkv\r\n");
    expect("GET", open_url(), "/health", NULL, 200, NULL);
    char got[4096];
    int64_t closed = wait_closed(fd, start, 4 * TIMEOUT_MS, 0, got, sizeof got);
    fprintf(stderr, "\n  half headers: closed after %lld ms ",
            (long long)closed);
    CU_ASSERT(closed >= TIMEOUT_MS - 50);
    CU_ASSERT(closed >= 0 && closed <= 2 * TIMEOUT_MS + 500);
    close(fd);
    expect("GET", open_url(), "/health", NULL, 200, NULL);
}

/* A body that trickles in, a byte every 100 ms: cut off (400, naming
   REQUEST_TIMEOUT_MS) at REQUEST_TIMEOUT_MS, whatever the client does. */
static void test_slow_body(void) {
    int fd = connect_port(s_open_node.port);
    int64_t start = kit_now_ms();
    send_text(fd, "POST /put HTTP/1.1\r\nHost: qkv\r\nContent-Type: "
                  "application/json\r\nContent-Length: 1000\r\n\r\n{\"key\"");
    char got[4096];
    int64_t closed =
        wait_closed(fd, start, 6 * TIMEOUT_MS, 100, got, sizeof got);
    fprintf(stderr, "\n  trickled body: closed after %lld ms ",
            (long long)closed);
    CU_ASSERT(closed >= TIMEOUT_MS - 50);
    CU_ASSERT(closed >= 0 && closed <= 2 * TIMEOUT_MS + 500);
    CU_ASSERT(strstr(got, "HTTP/1.1 400") == got);
    CU_ASSERT(strstr(got, "REQUEST_TIMEOUT_MS") != NULL);
    close(fd);
    expect("GET", open_url(), "/health", NULL, 200, NULL);
}

/* An idle keep-alive connection is closed after REQUEST_TIMEOUT_MS. */
static void test_idle_keep_alive(void) {
    int fd = connect_port(s_open_node.port);
    send_text(fd, "GET /health HTTP/1.1\r\nHost: qkv\r\n\r\n");
    int64_t start = kit_now_ms();
    char got[4096];
    int64_t closed = wait_closed(fd, start, 4 * TIMEOUT_MS, 0, got, sizeof got);
    fprintf(stderr, "\n  idle keep-alive: closed after %lld ms ",
            (long long)closed);
    CU_ASSERT(strstr(got, "HTTP/1.1 200") == got);
    CU_ASSERT(closed >= TIMEOUT_MS - 50);
    CU_ASSERT(closed >= 0 && closed <= 2 * TIMEOUT_MS + 500);
    close(fd);
}

/*  ---------------------------------------------------------------------
    TLS */

/* Runs an openssl command line; true when it succeeded. */
static bool openssl(const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "openssl %s >/dev/null 2>&1", args);
    return system(cmd) == 0;
}

/* A node whose certificate file is missing does not start. */
static void test_tls_missing_certificate(void) {
    char cert[160], port[16];
    snprintf(cert, sizeof cert, "%s/no-such-cert.pem", s_dir);
    kit_node_t node;
    kit_node_init(&node, "tls-missing", kit_free_port(), 0);
    snprintf(port, sizeof port, "%d", node.port);
    kit_node_args(&node, "--role", "leader", "--port", port, "--tls-cert-file",
                  cert, NULL);
    const char *words[] = {"TLS_CERT_FILE", cert, "No such file", NULL};
    CU_ASSERT(refuses_to_start(&node, words));
    kit_node_free(&node);
}

/* One TLS node: https works with the certificate as CA, plain http to
   the same port gets no answer. key: TLS_KEY_FILE, or NULL (the key is in
   the certificate's file). */
static void tls_node(const char *name, const char *cert, const char *key) {
    char port[16], key_name[64];
    kit_node_t node;
    kit_node_init(&node, name, kit_free_port(), 0);
    snprintf(port, sizeof port, "%d", node.port);
    kit_node_args(&node, "--role", "leader", "--port", port, "--tls-cert-file",
                  cert, NULL);
    if (key)
        kit_node_args(&node, "--tls-key-file", key, NULL);
    snprintf(node.url, sizeof node.url, "https://127.0.0.1:%d", node.port);
    kit_http_set_cafile(cert);
    CU_ASSERT_FATAL(kit_node_start(&node) == 0);
    /* Debian's civetweb 1.15 with OpenSSL 3: through libqkv-ssl-compat.so */
    if (kit_node_wait_healthy(&node, START_MS) != 0) {
        CU_FAIL("the TLS node did not start");
        kit_node_free(&node);
        kit_http_set_cafile(NULL);
        return;
    }
    char key_of_run[128];
    snprintf(key_name, sizeof key_name, "tls-%s", name);
    key_of(key_of_run, sizeof key_of_run, key_name);
    long status = 0;
    json_t *r =
        kit_qkv_write(node.url, "/put", key_of_run, "over-tls", &status, NULL);
    CU_ASSERT_EQUAL(status, 200);
    json_decref(r);
    CU_ASSERT(kit_qkv_holds(node.url, key_of_run, "over-tls", 1));
    /* plain http to the TLS port: no HTTP answer */
    char url[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", node.port);
    kit_http_set_quiet(true);
    kit_http_set_timeout_ms(3000);
    CU_ASSERT(kit_http_get(url, &status, NULL) != 0 || status == 0);
    kit_http_set_timeout_ms(30000);
    kit_http_set_quiet(false);
    /* https without the certificate as CA: refused by the client */
    kit_http_set_cafile("/dev/null");
    kit_http_set_quiet(true);
    snprintf(url, sizeof url, "%s/health", node.url);
    CU_ASSERT(kit_http_get(url, &status, NULL) != 0);
    kit_http_set_quiet(false);
    kit_http_set_cafile(cert);
    CU_ASSERT_EQUAL(kit_node_stop(&node, 10000), 0);
    kit_node_free(&node);
    kit_http_set_cafile(NULL);
}

static void test_tls(void) {
    char cert[160], key[160], both[160], args[900];
    snprintf(cert, sizeof cert, "%s/cert.pem", s_dir);
    snprintf(key, sizeof key, "%s/key.pem", s_dir);
    snprintf(both, sizeof both, "%s/both.pem", s_dir);
    snprintf(args, sizeof args,
             "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s",
             key, cert);
    CU_ASSERT_FATAL(openssl(args));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cat %s %s > %s && chmod 600 %s", cert, key, both,
             both);
    CU_ASSERT_FATAL(system(cmd) == 0);
    tls_node("tls-apart", cert, key); /* the key in its own file */
    tls_node("tls-one-file", both, NULL);
}

/*  ---------------------------------------------------------------------
    Suite */

static int s_init(void) {
    kit_random_tag(s_tag);
    snprintf(s_dir, sizeof s_dir, "/tmp/qkv-security-rest-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    random_token(s_read, "read");
    random_token(s_write, "write");
    snprintf(s_tokens_path, sizeof s_tokens_path, "%s/tokens", s_dir);
    char text[300];
    snprintf(text, sizeof text,
             "# the suite's tokens\n\nread %s\n  write\t%s  \n", s_read,
             s_write);
    if (write_file(s_tokens_path, text, 0600) != 0)
        return -1;

    char port[16], timeout[16], body[16];
    kit_node_init(&s_tokens_node, "tokens", kit_free_port(), 0);
    snprintf(port, sizeof port, "%d", s_tokens_node.port);
    kit_node_args(&s_tokens_node, "--role", "leader", "--port", port,
                  "--http-tokens-file", s_tokens_path, NULL);
    kit_node_init(&s_open_node, "open", kit_free_port(), 0);
    snprintf(port, sizeof port, "%d", s_open_node.port);
    snprintf(timeout, sizeof timeout, "%d", TIMEOUT_MS);
    snprintf(body, sizeof body, "%d", MAX_BODY);
    kit_node_args(&s_open_node, "--role", "leader", "--port", port,
                  "--request-timeout-ms", timeout, "--max-body-bytes", body,
                  NULL);
    if (start_node(&s_tokens_node) != 0 || start_node(&s_open_node) != 0)
        return -1;
    return 0;
}

static int s_cleanup(void) {
    int bad = 0;
    kit_http_thread_done();
    if (s_tokens_node.pid > 0)
        bad += kit_node_stop(&s_tokens_node, 10000) != 0;
    if (s_open_node.pid > 0)
        bad += kit_node_stop(&s_open_node, 10000) != 0;
    kit_node_free(&s_tokens_node);
    kit_node_free(&s_open_node);
    if (s_dir[0])
        kit_rmtree(s_dir);
    return bad ? -1 : 0;
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_no_token),
        KIT_TEST(test_wrong_token),
        KIT_TEST(test_read_token),
        KIT_TEST(test_write_token),
        KIT_TEST(test_health),
        KIT_TEST(test_denied_metrics),
        KIT_TEST(test_open_without_tokens),
        KIT_TEST(test_tokens_file_open_to_others),
        KIT_TEST(test_tokens_file_bad_line),
        KIT_TEST(test_max_body),
        KIT_TEST(test_slow_headers),
        KIT_TEST(test_slow_body),
        KIT_TEST(test_idle_keep_alive),
        KIT_TEST(test_tls_missing_certificate),
        KIT_TEST(test_tls),
        KIT_TESTS_END};
    return kit_add_suite("security_rest", s_init, s_cleanup, tests) ? 0 : -1;
}

int main(void) {
    kit_node_bin(); /* skips without a qkv-node to test */
    if (system("openssl version >/dev/null 2>&1") != 0)
        kit_skip("the openssl command is missing (scripts/deps.sh test "
                 "installs it): it makes the TLS certificates",
                 true);
    return kit_run(s_add_suites);
}
