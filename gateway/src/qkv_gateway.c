/*  qkv_gateway.c - the REST API of a node (DESIGN.md, "The REST API"),
    served by civetweb: JSON in (jansson, through the parsers of
    qkv_rest.c), JSON out (qkv_json), Prometheus text for /metrics.

    Threads: civetweb's workers run every handler. Each worker owns a few
    growable buffers (made in init_thread, freed in exit_thread) so a
    request normally allocates nothing but jansson's parse tree. Writes are
    handed to the node (qkv_node_write blocks until commit or deadline);
    reads copy out of the store; /dump visits a bounded batch of keys per
    call, formats them under the store's read lock and sends them after the
    call returns. No lock is held across I/O.

    Responses: status line, headers and (small) body go out in one write,
    always with Content-Type and Content-Length, except /dump which is
    chunked. Keep-alive follows civetweb's own rule (client's Connection
    header, else HTTP/1.1); when we must close (a body too large or chunked
    to skip, a failed read) we say "Connection: close" and tell civetweb.
    Errors civetweb raises itself (malformed requests, ...) come back
    through its http_error callback and get the same JSON error body.
*/
#include "qkv_gateway.h"
#include "qkv_clock.h"
#include "qkv_io.h"
#include "qkv_json.h"
#include "qkv_rest.h"
#include "qkv_say.h"
#include "qkv_wal.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

//  ---------------------------------------------------------------------
//  Limits and settings

#define S_DUMP_MAX_KEYS 256           /* keys per cursor call, at most */
#define S_DUMP_SOFT_BYTES (128 << 10) /* a chunk is sent past this size */
#define S_DUMP_HARD_BYTES (64 << 20)  /* worst case for one batch */
#define S_KEEP_BYTES (256 << 10)      /* larger worker buffers are freed */
#define S_IO_STEP (1 << 20)           /* bytes per mg_read / mg_write */
#define S_SPLIT_BYTES (64 << 10)      /* larger bodies: header written apart */
#define S_MIN_REQUEST_SIZE 16384      /* civetweb's request line + headers */
#define S_MAX_REQUEST_SIZE (1 << 20)
#define S_CONNECTION_QUEUE "20"     /* accepted, waiting for a worker */
#define S_FD_RESERVE 64             /* descriptors besides HTTP's */
#define S_DENIED_BODY_BYTES 8192    /* larger bodies of a 401/403: close */
#define S_SECRET_FILE_MAX (1 << 20) /* tokens file, certificate, key */
#define S_TLS_MIN_VERSION "4"       /* civetweb: TLS 1.2 and later */

#define S_JSON "application/json"
#define S_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

//  ---------------------------------------------------------------------
//  Structures

struct qkv_gateway_t {
    qkv_node_t *node;               /* not owned; outlives us */
    const qkv_config_t *cfg;        /* the node's settings */
    struct mg_context *ctx;         /* civetweb server, NULL until started */
    size_t max_body;                /* largest write body read */
    size_t key_size;                /* GET key buffer: longest key + 1 */
    size_t dump_max_keys;           /* keys per dump batch, worst case bound */
    size_t max_request_size;        /* civetweb's request line + headers */
    char leader_url[1024];          /* LEADER_URL without trailing '/' */
    qkv_rest_tokens_t tokens;       /* HTTP_TOKENS_FILE's, when has_tokens */
    bool has_tokens;                /* REST needs bearer tokens */
    atomic_uint_fast64_t denied[2]; /* 401s, 403s answered */
    pthread_t watchdog;             /* cuts body reads past their deadline */
    bool watchdog_started;          /* watchdog runs */
    pthread_mutex_t watch_mutex;    /* guards the four fields below */
    pthread_cond_t watch_cond;      /* an earlier deadline, or stopping */
    struct s_watch *watches;        /* body reads under way */
    int64_t watch_wake_us;          /* when the watchdog wakes next;
                                       INT64_MAX: when signalled */
    bool stopping;                  /* the watchdog is to end */
    pthread_mutex_t mutex;          /* guards the two fields below */
    bool started;                   /* mg_start returned */
    char start_error[256];          /* first message civetweb logged at start */
};

//  One civetweb worker thread's buffers, reused by every request it serves
typedef struct {
    qkv_buf_t out;   /* response body being built */
    qkv_buf_t head;  /* status line and headers (+ small body) */
    qkv_buf_t aux;   /* extra header lines */
    qkv_buf_t body;  /* request body */
    qkv_buf_t value; /* value copied out of the store */
    char *key;       /* GET key, key_size bytes */
    size_t key_size;
    qkv_node_status_t status; /* too big for a worker's stack frame */
} s_worker_t;

typedef struct s_route s_route_t;

//  One request being answered
typedef struct {
    qkv_gateway_t *gw;
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    s_worker_t *w;               /* NULL when the thread has no buffers */
    qkv_buf_t *out, *head, *aux; /* the worker's, or the spares below */
    qkv_buf_t spare[3];          /* buffers when w is NULL; freed at the end */
    const s_route_t *route;      /* the route matched, or NULL */
    qkv_rest_role_t role;        /* what its token allows (tokens off:
                                    everything) */
    int64_t start_us;            /* when the handler took it (monotonic) */
    bool head_only;              /* HEAD request: send no body */
    bool close;                  /* close the connection after the answer */
} s_req_t;

typedef int(s_route_fn)(s_req_t *req);

//  A route: exact path and the one method it answers
struct s_route {
    const char *path;
    const char *method;
    s_route_fn *fn;
    bool leader_only;     /* a write: followers redirect */
    bool reads_body;      /* fn reads the body itself */
    qkv_rest_need_t need; /* the token it takes (HTTP_TOKENS_FILE) */
};

static int s_handle_write(s_req_t *req);
static int s_handle_delete(s_req_t *req);
static int s_handle_reset(s_req_t *req);
static int s_handle_get(s_req_t *req);
static int s_handle_dump(s_req_t *req);
static int s_handle_health(s_req_t *req);
static int s_handle_metrics(s_req_t *req);
static int s_handle_transfer(s_req_t *req);
static void s_skip_body(s_req_t *req);

#define S_OPEN QKV_REST_NEED_NONE
#define S_READ QKV_REST_NEED_READ
#define S_WRITE QKV_REST_NEED_WRITE

static const s_route_t s_routes[] = {
    {"/put", "POST", s_handle_write, true, true, S_WRITE},
    {"/write", "POST", s_handle_write, true, true, S_WRITE},
    {"/delete", "POST", s_handle_delete, true, true, S_WRITE},
    {"/reset", "POST", s_handle_reset, true, true, S_WRITE},
    {"/get", "GET", s_handle_get, false, false, S_READ},
    {"/read", "GET", s_handle_get, false, false, S_READ},
    {"/dump", "GET", s_handle_dump, false, false, S_WRITE},
    {"/health", "GET", s_handle_health, false, false, S_OPEN},
    {"/metrics", "GET", s_handle_metrics, false, false, S_READ},
    {"/admin/transfer-leader", "POST", s_handle_transfer, true, true, S_WRITE},
};
#define S_ROUTE_COUNT (sizeof s_routes / sizeof s_routes[0])

//  ---------------------------------------------------------------------
//  Small helpers

static size_t s_sat_add(size_t a, size_t b) {
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t s_sat_mul(size_t a, size_t b) {
    return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

static const char *s_role_name(qkv_role_t role) {
    return role == QKV_ROLE_FOLLOWER    ? "follower"
           : role == QKV_ROLE_CANDIDATE ? "candidate"
                                        : "leader";
}

//  True when the comma-separated header value lists token (any case).

static bool s_has_token(const char *value, const char *token) {
    size_t token_len = strlen(token);
    while (*value) {
        while (*value == ' ' || *value == '\t' || *value == ',')
            value++;
        size_t len = strcspn(value, ",");
        size_t trimmed = len;
        while (trimmed > 0 &&
               (value[trimmed - 1] == ' ' || value[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == token_len && strncasecmp(value, token, trimmed) == 0)
            return true;
        value += len;
    }
    return false;
}

//  Appends bytes for a header value, percent-encoding every byte that is
//  not visible ASCII, so nothing from a request can break the header.

static void s_append_header_safe(qkv_buf_t *buf, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c < 0x7F)
            qkv_buf_append(buf, &s[i], 1);
        else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 0x0F]};
            qkv_buf_append(buf, esc, 3);
        }
    }
}

//  ---------------------------------------------------------------------
//  Worker threads

static void *s_on_thread_start(const struct mg_context *ctx, int thread_type) {
    if (thread_type != 1)
        return NULL; /* master and timer threads serve no requests */
    qkv_gateway_t *gw = mg_get_user_data(ctx);
    s_worker_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->key_size = gw->key_size;
    w->key = malloc(w->key_size);
    if (w->key == NULL) {
        free(w);
        return NULL;
    }
    return w;
}

static void s_on_thread_stop(const struct mg_context *ctx, int thread_type,
                             void *ptr) {
    (void)ctx;
    (void)thread_type;
    s_worker_t *w = ptr;
    if (w == NULL)
        return;
    qkv_buf_free(&w->out);
    qkv_buf_free(&w->head);
    qkv_buf_free(&w->aux);
    qkv_buf_free(&w->body);
    qkv_buf_free(&w->value);
    free(w->key);
    free(w);
}

//  ---------------------------------------------------------------------
//  Requests

static void s_req_init(s_req_t *req, struct mg_connection *conn) {
    memset(req, 0, sizeof *req);
    req->conn = conn;
    req->ri = mg_get_request_info(conn);
    req->gw = mg_get_user_data(mg_get_context(conn));
    req->w = mg_get_thread_pointer(conn);
    req->start_us = qkv_now_us();
    req->out = req->w ? &req->w->out : &req->spare[0];
    req->head = req->w ? &req->w->head : &req->spare[1];
    req->aux = req->w ? &req->w->aux : &req->spare[2];
    qkv_buf_reset(req->out);
    qkv_buf_reset(req->head);
    qkv_buf_reset(req->aux);
    const char *method = req->ri ? req->ri->request_method : NULL;
    req->head_only = method != NULL && strcmp(method, "HEAD") == 0;
}

//  Frees the spares and any worker buffer that grew past S_KEEP_BYTES, so
//  one huge request does not pin memory in every thread it ran on.

static void s_req_done(s_req_t *req) {
    for (size_t i = 0; i < 3; i++)
        qkv_buf_free(&req->spare[i]);
    s_worker_t *w = req->w;
    if (w == NULL)
        return;
    qkv_buf_t *bufs[] = {&w->out, &w->head, &w->aux, &w->body, &w->value};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]->cap > S_KEEP_BYTES)
            qkv_buf_free(bufs[i]);
}

//  Decides whether the connection stays open after this answer, by
//  civetweb's own rule (keep-alive is enabled in our options): the client's
//  Connection header when it sent one, else yes for HTTP/1.1 only. When
//  not, civetweb is told too, so the header and what happens agree.

static bool s_keep_alive(s_req_t *req) {
    bool keep = !req->close;
    if (keep) {
        const char *value = mg_get_header(req->conn, "Connection");
        const char *version = req->ri ? req->ri->http_version : NULL;
        if (value != NULL)
            keep = s_has_token(value, "keep-alive");
        else
            keep = version != NULL && strcmp(version, "1.1") == 0;
    }
    if (!keep)
        mg_disable_connection_keep_alive(req->conn);
    return keep;
}

//  ---------------------------------------------------------------------
//  Responses

static const char *s_status_text(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 421:
        return "Misdirected Request";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return status < 500 ? "Bad Request" : "Error";
    }
}

static int s_write_all(struct mg_connection *conn, const char *data,
                       size_t len) {
    while (len > 0) {
        size_t step = len < S_IO_STEP ? len : S_IO_STEP;
        if (mg_write(conn, data, step) != (int)step)
            return -1;
        data += step;
        len -= step;
    }
    return 0;
}

//  Last resort when a response could not be built: a fixed 503.

static int s_send_oom(s_req_t *req) {
    static const char body[] = "{\"ok\":false,\"status\":\"unavailable\","
                               "\"message\":\"out of memory\"}";
    mg_disable_connection_keep_alive(req->conn);
    mg_printf(req->conn,
              "HTTP/1.1 503 Service Unavailable\r\n"
              "Content-Type: " S_JSON "\r\n"
              "Content-Length: %zu\r\n"
              "Connection: close\r\n\r\n%s",
              sizeof body - 1, req->head_only ? "" : body);
    return 503;
}

//  Sends a whole response: status line, Content-Type, Content-Length,
//  Connection, the extra header lines in req->aux, then body (not for
//  HEAD). Small bodies go out in the same write as the headers. Returns
//  status (for civetweb's access log).

static int s_send(s_req_t *req, int status, const char *type,
                  const qkv_buf_t *body) {
    qkv_buf_t *head = req->head;
    size_t len = body->failed ? 0 : body->size;
    bool keep = s_keep_alive(req);

    if (body->failed || req->aux->failed)
        return s_send_oom(req);
    qkv_buf_reset(head);
    qkv_buf_printf(head,
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n"
                   "Connection: %s\r\n",
                   status, s_status_text(status), type, len,
                   keep ? "keep-alive" : "close");
    if (req->aux->size > 0)
        qkv_buf_append(head, req->aux->data, req->aux->size);
    qkv_buf_append(head, "\r\n", 2);
    bool joined = !req->head_only && len > 0 && len < S_SPLIT_BYTES;
    if (joined)
        qkv_buf_append(head, body->data, len);
    if (head->failed)
        return s_send_oom(req);
    int rc = s_write_all(req->conn, head->data, head->size);
    if (rc == 0 && !joined && !req->head_only && len > 0)
        rc = s_write_all(req->conn, body->data, len);
    if (rc != 0)
        mg_disable_connection_keep_alive(req->conn);
    return status;
}

//  JSON bodies: begin with "{", add members to req->out, end and send.

static void s_json_begin(s_req_t *req) {
    qkv_buf_reset(req->out);
    qkv_json_char(req->out, '{');
}

static int s_json_end(s_req_t *req, int status) {
    qkv_json_char(req->out, '}');
    return s_send(req, status, S_JSON, req->out);
}

//  Starts an error body {"ok":false,"status":code,"message":message}; the
//  caller may add members before s_json_end.

static void s_error_begin(s_req_t *req, const char *code, const char *message) {
    s_json_begin(req);
    qkv_json_member_bool(req->out, "ok", false);
    qkv_json_member_cstr(req->out, "status", code);
    qkv_json_member_cstr(req->out, "message", message);
}

static int s_error(s_req_t *req, int status, const char *code,
                   const char *message) {
    s_error_begin(req, code, message);
    return s_json_end(req, status);
}

//  Answers a request refused as invalid (400, 404, 405, 413) and counts
//  it for /metrics.

static int s_refuse(s_req_t *req, int status, const char *code, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

static int s_refuse(s_req_t *req, int status, const char *code, const char *fmt,
                    ...) {
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    if (req->gw != NULL)
        qkv_node_count_bad_request(req->gw->node, QKV_PROTO_REST);
    return s_error(req, status, code, message);
}

//  Answers what a qkv_rest parser refused; counted unless it was our
//  own shortage (503).

static int s_refuse_rest(s_req_t *req, const qkv_rest_error_t *err) {
    if (err->http >= 500)
        return s_error(req, err->http, err->status, err->message);
    return s_refuse(req, err->http, err->status, "%s", err->message);
}

//  Refuses a request access control stopped: 401 unauthorized (no token,
//  or one not in HTTP_TOKENS_FILE) or 403 forbidden (a read token on a
//  write route), with a Bearer challenge (RFC 6750) and counted for
//  /metrics; never logged, so no token reaches a log. A body of more than
//  a few kilobytes is not read for someone without the right: the
//  connection closes instead.

static int s_deny(s_req_t *req, qkv_rest_verdict_t verdict) {
    const char *path = req->route->path;
    int status = qkv_rest_verdict_http(verdict);
    char message[256];

    if (req->ri->content_length > S_DENIED_BODY_BYTES ||
        mg_get_header(req->conn, "Transfer-Encoding") != NULL)
        req->close = true;
    else
        s_skip_body(req);
    atomic_fetch_add_explicit(&req->gw->denied[status == 403], 1,
                              memory_order_relaxed);
    qkv_buf_printf(req->aux, "WWW-Authenticate: Bearer realm=\"qkv\"%s\r\n",
                   verdict == QKV_REST_NO_TOKEN ? ""
                   : verdict == QKV_REST_BAD_TOKEN
                       ? ", error=\"invalid_token\""
                       : ", error=\"insufficient_scope\"");
    const char *need =
        req->route->need == QKV_REST_NEED_WRITE ? "write" : "read";
    if (verdict == QKV_REST_NO_TOKEN)
        snprintf(message, sizeof message,
                 "%s needs a %s token: send the header \"Authorization: "
                 "Bearer TOKEN\"",
                 path, need);
    else if (verdict == QKV_REST_BAD_TOKEN)
        snprintf(message, sizeof message,
                 "the bearer token is not valid: not a token of this node, "
                 "or not sent as \"Authorization: Bearer TOKEN\"");
    else
        snprintf(message, sizeof message,
                 "%s needs a write token; this token may only read", path);
    return s_error(req, status, status == 403 ? "forbidden" : "unauthorized",
                   message);
}

//  No leader is known (PEERS: an election is under way): 503 no_leader
//  with Retry-After, nothing written.

static int s_no_leader(s_req_t *req) {
    qkv_buf_append(req->aux, "Retry-After: 1\r\n", 16);
    s_error_begin(req, "no_leader",
                  "no leader is known: an election is under way; nothing "
                  "written, try again after retry_after_ms");
    qkv_json_member_u64(req->out, "retry_after_ms", 1000);
    return s_json_end(req, 503);
}

//  A write or reset reached a follower: 307 to the leader's URL + path +
//  query (PEERS: the leader it follows now; else LEADER_URL), else 421
//  (PEERS: 503 no_leader).

static int s_not_leader(s_req_t *req) {
    const s_route_t *route = req->route;
    const qkv_gateway_t *gw = req->gw;
    const char *query = req->ri->query_string;
    char url[1024];

    qkv_node_leader_url(gw->node, url, sizeof url);
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        url[--len] = '\0';
    if (gw->cfg->peers && url[0] == '\0')
        return s_no_leader(req);
    if (url[0] == '\0') {
        return s_error(req, 421, "not_leader",
                       "this node is a follower and LEADER_URL is not set; "
                       "send writes to the leader");
    }
    s_error_begin(req, "not_leader",
                  "this node is a follower; send writes to the leader");
    qkv_json_member_cstr(req->out, "leader", url);
    qkv_buf_append(req->aux, "Location: ", 10);
    s_append_header_safe(req->aux, url, len);
    s_append_header_safe(req->aux, route->path, strlen(route->path));
    if (query != NULL && query[0] != '\0') {
        qkv_buf_append(req->aux, "?", 1);
        s_append_header_safe(req->aux, query, strlen(query));
    }
    qkv_buf_append(req->aux, "\r\n", 2);
    return s_json_end(req, 307);
}

//  ---------------------------------------------------------------------
//  Body deadlines
//
//  civetweb ends a read only after request_timeout_ms without a byte, so
//  a client that trickles a byte now and then keeps one mg_read going as
//  long as it likes. Each body read is therefore registered with its
//  deadline (REQUEST_TIMEOUT_MS after the handler took the request), and
//  one watchdog thread cuts the reads that pass it: it finds the
//  connection's socket among the process's descriptors (the one whose
//  local port is PORT and whose peer is the request's) and shuts down its
//  reading side, which ends the mg_read at once while the answer (400,
//  Connection: close) can still be written. That socket cannot be closed
//  and reused meanwhile: civetweb closes it only after the handler
//  returns, and the handler ends its watch first, under the same mutex.

typedef struct s_watch {
    struct s_watch *next;
    const struct mg_request_info *ri; /* remote_addr, remote_port */
    int64_t deadline_us;              /* monotonic */
    bool cut;                         /* the watchdog shut the socket */
} s_watch_t;

static void s_watch_begin(s_req_t *req, s_watch_t *watch) {
    qkv_gateway_t *gw = req->gw;
    watch->ri = req->ri;
    watch->deadline_us =
        req->start_us + (int64_t)gw->cfg->request_timeout_ms * 1000;
    watch->cut = false;
    pthread_mutex_lock(&gw->watch_mutex);
    watch->next = gw->watches;
    gw->watches = watch;
    /* Only a deadline before the watchdog's next wake-up needs it now: a
       signal per request would cost every write a thread wake-up. */
    if (watch->deadline_us < gw->watch_wake_us)
        pthread_cond_signal(&gw->watch_cond);
    pthread_mutex_unlock(&gw->watch_mutex);
}

//  Ends a watch; true when the watchdog cut the read.

static bool s_watch_end(s_req_t *req, s_watch_t *watch) {
    qkv_gateway_t *gw = req->gw;
    pthread_mutex_lock(&gw->watch_mutex);
    s_watch_t **at = &gw->watches;
    while (*at != NULL && *at != watch)
        at = &(*at)->next;
    if (*at != NULL)
        *at = watch->next;
    bool cut = watch->cut;
    pthread_mutex_unlock(&gw->watch_mutex);
    return cut;
}

//  The port of a socket address, and its address as text; -1 when it is
//  not IPv4 or IPv6.

static int s_addr_port(const struct sockaddr_storage *sa, char *text,
                       size_t size) {
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)size);
        return ntohs(in->sin_port);
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)size);
        return ntohs(in6->sin6_port);
    }
    return -1;
}

//  Shuts down the reading side of the connection watch is for, found by
//  its local port and its peer. Runs under watch_mutex.

static void s_watch_cut(const qkv_gateway_t *gw, const s_watch_t *watch) {
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *entry;
    bool found = false;

    if (dir == NULL)
        return;
    while (!found && (entry = readdir(dir)) != NULL) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        char text[64];
        int fd = atoi(entry->d_name);
        if (entry->d_name[0] == '.' || fd == dirfd(dir) ||
            getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
            s_addr_port(&sa, text, sizeof text) != gw->cfg->port)
            continue;
        len = sizeof sa;
        if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
            s_addr_port(&sa, text, sizeof text) != watch->ri->remote_port ||
            strcmp(text, watch->ri->remote_addr) != 0)
            continue;
        found = shutdown(fd, SHUT_RD) == 0;
    }
    closedir(dir);
    qkv_warn("http: a request body from %s:%d did not arrive within "
             "REQUEST_TIMEOUT_MS (%d ms)%s",
             watch->ri->remote_addr, watch->ri->remote_port,
             gw->cfg->request_timeout_ms, found ? ": cut off" : "");
}

static void *s_watchdog(void *arg) {
    qkv_gateway_t *gw = arg;
    pthread_mutex_lock(&gw->watch_mutex);
    while (!gw->stopping) {
        int64_t now = qkv_now_us(), next = INT64_MAX;
        for (s_watch_t *w = gw->watches; w != NULL; w = w->next) {
            if (w->cut)
                continue;
            if (w->deadline_us <= now) {
                s_watch_cut(gw, w);
                w->cut = true;
            } else if (w->deadline_us < next)
                next = w->deadline_us;
        }
        gw->watch_wake_us = next;
        if (next == INT64_MAX) {
            pthread_cond_wait(&gw->watch_cond, &gw->watch_mutex);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (next - now) * 1000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&gw->watch_cond, &gw->watch_mutex, &ts);
    }
    pthread_mutex_unlock(&gw->watch_mutex);
    return NULL;
}

//  Starts the watchdog; -1 with the reason in err.

static int s_watchdog_start(qkv_gateway_t *self, char *err, size_t err_size) {
    int rc = pthread_create(&self->watchdog, NULL, s_watchdog, self);
    if (rc != 0) {
        snprintf(err, err_size, "HTTP body watchdog: %s", strerror(rc));
        return -1;
    }
    self->watchdog_started = true;
    return 0;
}

static void s_watchdog_stop(qkv_gateway_t *self) {
    if (!self->watchdog_started)
        return;
    pthread_mutex_lock(&self->watch_mutex);
    self->stopping = true;
    pthread_cond_signal(&self->watch_cond);
    pthread_mutex_unlock(&self->watch_mutex);
    pthread_join(self->watchdog, NULL);
    self->watchdog_started = false;
}

//  ---------------------------------------------------------------------
//  Request bodies

//  Reads exactly len bytes of the body into data: 0; -1 when the client
//  stops short or stays silent for REQUEST_TIMEOUT_MS (civetweb's
//  request_timeout_ms); -2 when REQUEST_TIMEOUT_MS has passed since the
//  handler took the request, whatever the client does (see "Body
//  deadlines").

static int s_read_exact(s_req_t *req, char *data, size_t len) {
    s_watch_t watch;
    int rc = 0;

    s_watch_begin(req, &watch);
    while (len > 0 && rc == 0) {
        size_t step = len < S_IO_STEP ? len : S_IO_STEP;
        int n = 0;
        if (qkv_now_us() >= watch.deadline_us)
            rc = -2;
        else if ((n = mg_read(req->conn, data, step)) <= 0)
            rc = -1;
        else {
            data += n;
            len -= (size_t)n;
        }
    }
    if (s_watch_end(req, &watch) && rc != 0)
        rc = -2;
    return rc;
}

//  Consumes a body the route does not use so the connection can carry the
//  next request. A chunked body, one larger than max_body, or one that
//  cannot be read is not skipped: the connection closes instead.

static void s_skip_body(s_req_t *req) {
    long long len = req->ri->content_length;
    char scratch[8192];

    if (mg_get_header(req->conn, "Transfer-Encoding") != NULL) {
        req->close = true;
        return;
    }
    if (len <= 0)
        return;
    if ((unsigned long long)len > req->gw->max_body) {
        req->close = true;
        return;
    }
    while (len > 0) {
        size_t step =
            len < (long long)sizeof scratch ? (size_t)len : sizeof scratch;
        if (s_read_exact(req, scratch, step) != 0) {
            req->close = true;
            return;
        }
        len -= (long long)step;
    }
}

//  Reads a write's body into the worker's body buffer (NUL-terminated
//  when there is one). When optional (POST /reset), a request without
//  Content-Length has an empty body. Returns 0, or the status of the
//  error it answered.

static int s_read_body(s_req_t *req, bool optional) {
    long long len = req->ri->content_length;
    qkv_buf_t *body = &req->w->body;
    size_t max_body = req->gw->max_body;

    qkv_buf_reset(body);
    if (mg_get_header(req->conn, "Transfer-Encoding") != NULL) {
        req->close = true;
        return s_refuse(req, 400, "bad_request",
                        "Content-Length required (no Transfer-Encoding)");
    }
    if (len < 0 && optional)
        return 0;
    if (len < 0)
        return s_refuse(req, 400, "bad_request", "Content-Length required");
    if ((unsigned long long)len > max_body) {
        req->close = true;
        return s_refuse(req, 413, "too_large",
                        "body is %lld bytes; the limit is %zu "
                        "(MAX_BODY_BYTES)",
                        len, max_body);
    }
    if (qkv_buf_reserve(body, (size_t)len + 1) != 0) {
        req->close = true;
        return s_error(req, 503, "unavailable", "out of memory");
    }
    int rc = s_read_exact(req, body->data, (size_t)len);
    if (rc != 0) {
        req->close = true;
        if (rc == -2)
            return s_refuse(req, 400, "bad_request",
                            "request body not received within "
                            "REQUEST_TIMEOUT_MS (%d ms)",
                            req->gw->cfg->request_timeout_ms);
        return s_refuse(req, 400, "bad_request", "request body incomplete");
    }
    body->size = (size_t)len;
    body->data[len] = '\0';
    return 0;
}

//  ---------------------------------------------------------------------
//  POST /put, /write, /delete, /reset

//  Answers a write's result. A tagged write answers like an untagged one;
//  the pair only shows in the 409s' messages.

static int s_write_answer(s_req_t *req, const qkv_write_t *w,
                          const qkv_write_result_t *r) {
    const qkv_config_t *cfg = req->gw->cfg;
    bool keyed = w->op != QKV_OP_RESET;
    char message[256];
    int status = 503;

    switch (r->status) {
    case QKV_WRITE_COMMITTED:
        s_json_begin(req);
        qkv_json_member_bool(req->out, "ok", true);
        qkv_json_member_cstr(req->out, "status", "success");
        if (keyed)
            qkv_json_member_str(req->out, "key", w->key, w->key_len);
        if (w->op == QKV_OP_PUT)
            qkv_json_member_u64(req->out, "seq", r->seq);
        if (w->op == QKV_OP_DELETE)
            qkv_json_member_bool(req->out, "deleted", r->seq != 0);
        qkv_json_member_u64(req->out, "index", r->index);
        qkv_json_member_seconds(req->out, "latency", r->latency_us);
        qkv_json_member_cstr(req->out, "message",
                             w->op == QKV_OP_RESET    ? "store reset"
                             : w->op == QKV_OP_DELETE ? "delete committed"
                                                      : "write committed");
        return s_json_end(req, 200);
    case QKV_WRITE_TIMEOUT:
        snprintf(message, sizeof message,
                 "not confirmed by %d follower(s) within %d ms; the entry "
                 "stays in the log and commits when they answer",
                 cfg->write_quorum, cfg->replication_timeout_ms);
        s_error_begin(req, "quorum_not_reached", message);
        break;
    case QKV_WRITE_CONFLICT:
        snprintf(message, sizeof message,
                 "client_id %" PRIu64 ", client_seq %" PRIu64
                 " was used for another write; nothing written",
                 w->client_id, w->client_seq);
        s_error_begin(req, "conflict", message);
        status = 409;
        break;
    case QKV_WRITE_SESSION_EXPIRED:
        snprintf(message, sizeof message,
                 "client_seq %" PRIu64 " is older than the session of "
                 "client_id %" PRIu64 " remembers; refused, never applied",
                 w->client_seq, w->client_id);
        s_error_begin(req, "session_expired", message);
        status = 409;
        break;
    case QKV_WRITE_NO_SPACE:
        s_error_begin(req, "insufficient_storage",
                      "not written: the node cannot write its log (disk "
                      "full or an I/O error); try again later");
        status = 507;
        break;
    case QKV_WRITE_MEMORY_FULL:
        s_error_begin(req, "insufficient_storage",
                      "not written: the node holds MAX_MEMORY bytes of keys, "
                      "values, sessions and log; delete keys or raise "
                      "MAX_MEMORY");
        status = 507;
        break;
    case QKV_WRITE_OVERLOADED:
        s_error_begin(req, "overloaded",
                      "not written: MAX_PENDING_WRITES writes are in flight "
                      "on the leader; try again after retry_after_ms");
        qkv_json_member_u64(req->out, "retry_after_ms", 100);
        qkv_buf_append(req->aux, "Retry-After: 1\r\n", 16);
        break;
    case QKV_WRITE_LEADER_CHANGED:
        s_error_begin(req, "leader_changed",
                      "the leader stepped down while the write waited: the "
                      "next leader may commit or drop it; retry with the "
                      "same client_id and client_seq to learn which");
        break;
    default:
        s_error_begin(req, "unavailable",
                      "not written: the node is out of memory or stopping");
        break;
    }
    if (keyed)
        qkv_json_member_str(req->out, "key", w->key, w->key_len);
    if (r->status == QKV_WRITE_TIMEOUT || r->status == QKV_WRITE_LEADER_CHANGED)
        qkv_json_member_u64(req->out, "index", r->index);
    return s_json_end(req, status);
}

//  Every write route: the body, its parse, one entry, the answer.

static int s_write(s_req_t *req, qkv_op_t op) {
    const qkv_config_t *cfg = req->gw->cfg;
    qkv_rest_limits_t limits = {cfg->max_key_bytes, cfg->max_value_bytes};
    qkv_rest_write_t parsed;
    qkv_rest_error_t err;
    qkv_write_result_t result;
    int rc = s_read_body(req, op == QKV_OP_RESET);

    if (rc != 0)
        return rc;
    if (qkv_rest_parse_write(req->w->body.data, req->w->body.size, op, &limits,
                             &parsed, &err) != 0)
        return s_refuse_rest(req, &err);
    memset(&result, 0, sizeof result);
    qkv_node_write(req->gw->node, &parsed.write, &result);
    if (result.status == QKV_WRITE_NOT_LEADER)
        rc = s_not_leader(req);
    else if (result.status == QKV_WRITE_NO_LEADER)
        rc = s_no_leader(req);
    else
        rc = s_write_answer(req, &parsed.write, &result);
    qkv_rest_write_free(&parsed);
    return rc;
}

static int s_handle_write(s_req_t *req) {
    return s_write(req, QKV_OP_PUT);
}

//  ---------------------------------------------------------------------
//  POST /admin/transfer-leader {"to": ID}: 200 once ID leads, 404 for an
//  unknown ID, 409 when it is not up to date or did not take over in
//  time (two election timeouts).

static int s_handle_transfer(s_req_t *req) {
    const qkv_config_t *cfg = req->gw->cfg;
    char to[sizeof cfg->node_id];
    qkv_rest_error_t err;
    int rc = s_read_body(req, false);
    if (rc != 0)
        return rc;
    if (qkv_rest_parse_transfer(req->w->body.data, req->w->body.size, to,
                                sizeof to, &err) != 0)
        return s_refuse_rest(req, &err);
    if (!cfg->peers)
        return s_error(req, 409, "conflict",
                       "this node runs without PEERS (a fixed leader): "
                       "there is nothing to hand over to");
    qkv_transfer_t t = qkv_node_transfer_leader(req->gw->node, to,
                                                cfg->election_timeout_ms * 2);
    switch (t) {
    case QKV_TRANSFER_DONE:
        s_json_begin(req);
        qkv_json_member_bool(req->out, "ok", true);
        qkv_json_member_cstr(req->out, "status", "success");
        qkv_json_member_cstr(req->out, "leader", to);
        return s_json_end(req, 200);
    case QKV_TRANSFER_UNKNOWN:
        s_error_begin(req, "not_found", "no node of that NODE_ID in PEERS");
        qkv_json_member_cstr(req->out, "to", to);
        return s_json_end(req, 404);
    case QKV_TRANSFER_NOT_LEADER:
        return s_not_leader(req); /* it stopped leading meanwhile */
    case QKV_TRANSFER_BEHIND:
        s_error_begin(req, "conflict",
                      "that node is not up to date (behind the commit "
                      "index, or silent): not handed over");
        qkv_json_member_cstr(req->out, "to", to);
        return s_json_end(req, 409);
    default:
        s_error_begin(req, "conflict",
                      "that node did not take over within two election "
                      "timeouts; this node leads on");
        qkv_json_member_cstr(req->out, "to", to);
        return s_json_end(req, 409);
    }
}

static int s_handle_delete(s_req_t *req) {
    return s_write(req, QKV_OP_DELETE);
}

static int s_handle_reset(s_req_t *req) {
    return s_write(req, QKV_OP_RESET);
}

//  ---------------------------------------------------------------------
//  GET /get?key=K, GET /read?key=K

//  Parses the query (key into the worker's key buffer when want_key);
//  0, or answers and returns the status.

static int s_parse_query(s_req_t *req, bool want_key, qkv_rest_query_t *q) {
    const qkv_config_t *cfg = req->gw->cfg;
    qkv_rest_limits_t limits = {cfg->max_key_bytes, cfg->max_value_bytes};
    const char *query = req->ri->query_string;
    qkv_rest_error_t err;

    if (qkv_rest_parse_query(query, query ? strlen(query) : 0, want_key,
                             &limits, req->w->key, req->w->key_size, q,
                             &err) != 0)
        return s_refuse_rest(req, &err);
    return 0;
}

//  Read-your-writes: with ?min_index=I (and &wait_ms=W), waits until this
//  node has applied I; answers 503 not_ready after W ms.

static int s_wait_min_index(s_req_t *req, const qkv_rest_query_t *q) {
    if (q->min_index == 0)
        return 0;
    if (qkv_node_wait_applied(req->gw->node, q->min_index, (int)q->wait_ms) ==
        0)
        return 0;
    s_error_begin(req, "not_ready",
                  "min_index not applied on this node within wait_ms");
    qkv_json_member_u64(req->out, "min_index", q->min_index);
    return s_json_end(req, 503);
}

static int s_handle_get(s_req_t *req) {
    qkv_gateway_t *gw = req->gw;
    s_worker_t *w = req->w;
    qkv_rest_query_t q;
    uint64_t seq = 0, index = 0;

    int rc = s_parse_query(req, true, &q);
    if (rc == 0)
        rc = s_wait_min_index(req, &q);
    if (rc != 0)
        return rc;
    const char *refusal = qkv_node_read_refusal(gw->node);
    if (refusal)
        return s_error(req, 503, "not_ready", refusal);

    qkv_buf_reset(&w->value);
    int found = qkv_store_get(qkv_node_store(gw->node), w->key, q.key_len,
                              &w->value, &seq, &index);
    if (found < 0 || w->value.failed)
        return s_error(req, 503, "unavailable", "out of memory");
    refusal = qkv_node_read_confirm(gw->node); /* a fresh clock: the lease */
    if (refusal)
        return s_error(req, 503, "not_ready", refusal);
    if (found == 0) {
        s_error_begin(req, "not_found", "key not found");
        qkv_json_member_str(req->out, "key", w->key, q.key_len);
        return s_json_end(req, 404);
    }
    s_json_begin(req);
    qkv_json_member_str(req->out, "key", w->key, q.key_len);
    qkv_json_member_str(req->out, "value", w->value.data, w->value.size);
    qkv_json_member_u64(req->out, "seq", seq);
    qkv_json_member_u64(req->out, "index", index);
    if (!qkv_node_is_leader(gw->node))
        qkv_json_member_cstr(req->out, "follower_id", gw->cfg->node_id);
    return s_json_end(req, 200);
}

//  ---------------------------------------------------------------------
//  GET /dump
//
//  {"entries": {K: {"value": V, "seq": N}, ...}, "count": N, "role": R,
//   "applied_index": I}, sent chunked (HTTP/1.0: raw, then close). Each
//  cursor call (one hold of the store's read lock) visits a batch of keys
//  small enough that its text stays near S_DUMP_SOFT_BYTES for the
//  entries seen so far and can never pass S_DUMP_HARD_BYTES for the
//  largest entries the limits allow; batches are gathered into one chunk
//  until it passes S_DUMP_SOFT_BYTES. count is the number of entries
//  sent, so it is written after them.

typedef struct {
    qkv_buf_t *out; /* JSON text not sent yet */
    size_t emitted; /* entries formatted so far */
    size_t largest; /* most bytes one entry took */
} s_dump_t;

//  Runs under the store's read lock: format only.

static void s_dump_visit(void *arg, const char *key, size_t key_len,
                         const char *value, size_t value_len, uint64_t seq,
                         uint64_t index) {
    (void)index;
    s_dump_t *dump = arg;
    size_t before = dump->out->size;

    if (dump->emitted > 0)
        qkv_json_char(dump->out, ',');
    qkv_json_string(dump->out, key, key_len);
    qkv_json_char(dump->out, ':');
    qkv_json_char(dump->out, '{');
    qkv_json_member_str(dump->out, "value", value, value_len);
    qkv_json_member_u64(dump->out, "seq", seq);
    qkv_json_char(dump->out, '}');
    dump->emitted++;
    if (dump->out->size - before > dump->largest)
        dump->largest = dump->out->size - before;
}

static size_t s_dump_batch(const qkv_gateway_t *gw, const s_dump_t *dump) {
    size_t keys = gw->dump_max_keys;
    if (dump->largest > 0 && S_DUMP_SOFT_BYTES / dump->largest < keys)
        keys = S_DUMP_SOFT_BYTES / dump->largest;
    return keys > 0 ? keys : 1;
}

//  Sends one piece of the body; -1 when the client is gone.

static int s_dump_send(s_req_t *req, bool chunked, const qkv_buf_t *buf) {
    if (buf->failed)
        return -1;
    if (buf->size == 0)
        return 0; /* an empty chunk would end the body */
    if (!chunked)
        return s_write_all(req->conn, buf->data, buf->size);
    if (buf->size > UINT32_MAX)
        return -1;
    int sent = mg_send_chunk(req->conn, buf->data, (unsigned)buf->size);
    return sent > 0 ? 0 : -1;
}

static int s_dump_headers(s_req_t *req, bool chunked) {
    bool keep = chunked && s_keep_alive(req);
    if (!chunked)
        mg_disable_connection_keep_alive(req->conn);
    int rc = mg_printf(req->conn,
                       "HTTP/1.1 200 OK\r\n"
                       "Content-Type: " S_JSON "\r\n"
                       "%s"
                       "Cache-Control: no-store\r\n"
                       "Connection: %s\r\n\r\n",
                       chunked ? "Transfer-Encoding: chunked\r\n" : "",
                       keep ? "keep-alive" : "close");
    return rc > 0 ? 0 : -1;
}

//  Streams every batch, then the closing members. Returns -1 when the
//  body could not be completed (the connection must then close).

static int s_dump_stream(s_req_t *req, qkv_store_cursor_t *cursor, bool chunked,
                         uint64_t applied_index) {
    const qkv_gateway_t *gw = req->gw;
    s_dump_t dump = {req->out, 0, 0};

    qkv_buf_reset(req->out);
    qkv_buf_append(req->out, "{\"entries\":{", 12);
    while (qkv_store_cursor_next(cursor, s_dump_batch(gw, &dump), s_dump_visit,
                                 &dump) > 0) {
        if (req->out->failed)
            return -1;
        if (req->out->size < S_DUMP_SOFT_BYTES)
            continue;
        if (s_dump_send(req, chunked, req->out) != 0)
            return -1;
        qkv_buf_reset(req->out);
    }
    qkv_json_char(req->out, '}');
    qkv_json_member_u64(req->out, "count", dump.emitted);
    qkv_json_member_cstr(req->out, "role",
                         s_role_name(qkv_node_is_leader(gw->node)
                                         ? QKV_ROLE_LEADER
                                         : QKV_ROLE_FOLLOWER));
    qkv_json_member_u64(req->out, "applied_index", applied_index);
    qkv_json_char(req->out, '}');
    if (s_dump_send(req, chunked, req->out) != 0)
        return -1;
    if (chunked && mg_send_chunk(req->conn, "", 0) <= 0)
        return -1;
    return 0;
}

static int s_handle_dump(s_req_t *req) {
    const char *version = req->ri->http_version;
    bool chunked = version != NULL && strcmp(version, "1.0") != 0;
    uint64_t applied_index = 0;
    size_t count = 0;
    qkv_rest_query_t q;
    int rc = s_parse_query(req, false, &q);
    if (rc == 0)
        rc = s_wait_min_index(req, &q);
    if (rc != 0)
        return rc;

    qkv_store_cursor_t *cursor = qkv_store_cursor_new(
        qkv_node_store(req->gw->node), &applied_index, &count);
    if (cursor == NULL)
        return s_error(req, 503, "unavailable", "out of memory");
    rc = s_dump_headers(req, chunked);
    if (rc == 0)
        rc = s_dump_stream(req, cursor, chunked, applied_index);
    qkv_store_cursor_destroy(&cursor);
    if (rc != 0)
        mg_disable_connection_keep_alive(req->conn); /* body is cut short */
    return 200;
}

//  ---------------------------------------------------------------------
//  GET /health

static void s_health_followers(qkv_buf_t *out, const qkv_node_status_t *st) {
    size_t count = st->follower_count;
    if (count > QKV_MAX_FOLLOWERS)
        count = QKV_MAX_FOLLOWERS;
    qkv_json_name(out, "followers");
    qkv_json_char(out, '[');
    for (size_t i = 0; i < count; i++) {
        const qkv_follower_status_t *f = &st->followers[i];
        qkv_json_sep(out);
        qkv_json_char(out, '{');
        qkv_json_member_str(out, "id", f->id, strnlen(f->id, sizeof f->id));
        qkv_json_member_str(out, "endpoint", f->endpoint,
                            strnlen(f->endpoint, sizeof f->endpoint));
        qkv_json_member_bool(out, "connected", f->connected);
        qkv_json_member_u64(out, "acked_index", f->acked_index);
        qkv_json_member_u64(out, "lag", f->lag);
        qkv_json_char(out, '}');
    }
    qkv_json_char(out, ']');
}

static int s_handle_health(s_req_t *req) {
    const qkv_config_t *cfg = req->gw->cfg;
    qkv_node_status_t *st = &req->w->status;
    qkv_buf_t *out = req->out;

    memset(st, 0, sizeof *st);
    qkv_node_status(req->gw->node, st);
    size_t error_len = strnlen(st->error, sizeof st->error);
    s_json_begin(req);
    qkv_json_member_cstr(out, "status", error_len > 0 ? "degraded" : "ok");
    qkv_json_member_cstr(out, "role", s_role_name(st->role));
    if (req->role == QKV_REST_ROLE_NONE) /* tokens on, none valid given */
        return s_json_end(req, 200);
    qkv_json_member_cstr(out, "id", cfg->node_id);
    if (st->elections) {
        /* "" while no leader is known */
        qkv_json_member_str(out, "leader_id", st->leader_id,
                            strnlen(st->leader_id, sizeof st->leader_id));
        qkv_json_member_bool(out, "voter", st->voter);
        qkv_json_member_u64(out, "last_election_ms",
                            (uint64_t)st->last_election_ms);
        qkv_json_member_u64(out, "election_timeout_ms",
                            (uint64_t)cfg->election_timeout_ms);
        /* the arithmetic of elections (README "Failover"): a leader is
           elected with this many votes of the nodes in PEERS */
        size_t n = cfg->peer_count, q = (size_t)cfg->write_quorum;
        size_t majority = n / 2 + 1;
        qkv_json_member_u64(out, "votes_needed",
                            n - q > majority ? n - q : majority);
        qkv_json_member_u64(out, "nodes", n);
    }
    size_t cluster_len = strnlen(st->cluster_id, sizeof st->cluster_id);
    qkv_json_member_str(out, "cluster_id", st->cluster_id, cluster_len);
    qkv_json_member_u64(out, "term", st->term);
    /* the cluster id under its old name, for tools written before it */
    qkv_json_member_str(out, "replication_id", st->cluster_id, cluster_len);
    qkv_json_member_u64(out, "last_index", st->last_index);
    qkv_json_member_u64(out, "commit_index", st->commit_index);
    qkv_json_member_u64(out, "applied_index", st->applied_index);
    qkv_json_member_u64(out, "durable_index", st->durable_index);
    qkv_json_member_u64(out, "snapshot_index", st->snapshot_index);
    qkv_json_member_cstr(out, "fsync", qkv_fsync_name(cfg->fsync));
    qkv_json_member_bool(out, "durable", cfg->data_dir[0] != '\0');
    if (st->role == QKV_ROLE_LEADER)
        qkv_json_member_bool(out, "serving", st->serving);
    else {
        qkv_json_member_bool(out, "syncing", st->syncing);
        qkv_json_member_u64(out, "behind", st->behind);
    }
    qkv_json_member_u64(out, "max_key_bytes", cfg->max_key_bytes);
    qkv_json_member_u64(out, "max_value_bytes", cfg->max_value_bytes);
    qkv_json_member_u64(out, "max_frame_bytes", st->max_frame_bytes);
    if (error_len > 0)
        qkv_json_member_str(out, "error", st->error, error_len);
    if (st->role == QKV_ROLE_LEADER)
        s_health_followers(out, st);
    return s_json_end(req, 200);
}

//  ---------------------------------------------------------------------
//  GET /metrics (Prometheus text format 0.0.4)

static void s_metric_head(qkv_buf_t *out, const char *name, const char *type,
                          const char *help) {
    qkv_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_metric(qkv_buf_t *out, const char *name, const char *type,
                     const char *help, uint64_t value) {
    s_metric_head(out, name, type, help);
    qkv_buf_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void s_metric_durability(qkv_buf_t *out, const qkv_metrics_t *m,
                                const qkv_node_status_t *st) {
    s_metric(out, "qkv_durable_index", "gauge",
             "Last log entry held as FSYNC promises.", st->durable_index);
    s_metric(out, "qkv_snapshot_index", "gauge",
             "Index of the newest snapshot (0: none).", st->snapshot_index);
    s_metric(out, "qkv_fsyncs_total", "counter",
             "fsync rounds of the write-ahead log (one covers every entry "
             "written since the last).",
             m->fsyncs);
    s_metric(out, "qkv_fsync_failures_total", "counter",
             "fsync rounds that failed (what they held is written again).",
             m->fsync_failures);
    s_metric(out, "qkv_fsync_entries_total", "counter",
             "Entries made durable by fsync rounds; divided by "
             "qkv_fsyncs_total: entries per fsync (group commit).",
             m->entries_synced);
    s_metric_head(out, "qkv_fsync_seconds", "histogram",
                  "Time of one fsync round.");
    uint64_t cum = 0;
    for (int i = 0; i < 7; i++) {
        cum += m->fsync_le[i];
        qkv_buf_printf(out, "qkv_fsync_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                       qkv_wal_fsync_bounds_s[i], cum);
    }
    cum += m->fsync_le[7];
    qkv_buf_printf(out,
                   "qkv_fsync_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                   "qkv_fsync_seconds_sum %.6f\n"
                   "qkv_fsync_seconds_count %" PRIu64 "\n",
                   cum, m->fsync_seconds, cum);
    s_metric(out, "qkv_log_disk_bytes", "gauge",
             "Bytes of write-ahead log segments on disk.", m->log_disk_bytes);
    s_metric(out, "qkv_log_write_errors_total", "counter",
             "Log writes the disk refused (full, I/O error).",
             m->log_write_errors);
    s_metric_head(out, "qkv_recovery_seconds", "gauge",
                  "Start-up: loading the snapshot and replaying the log.");
    qkv_buf_printf(out, "qkv_recovery_seconds %.6f\n", m->recovery_seconds);
    s_metric(out, "qkv_snapshots_total", "counter", "Snapshots written.",
             m->snapshots);
    s_metric(out, "qkv_snapshot_bytes", "gauge", "Size of the newest snapshot.",
             m->snapshot_bytes);
    s_metric(out, "qkv_snapshots_sent_total", "counter",
             "Leader: snapshots sent to followers behind its log.",
             m->snapshots_sent);
    s_metric(out, "qkv_snapshots_installed_total", "counter",
             "Follower: snapshots received from the leader and installed.",
             m->snapshots_installed);
}

static void s_metric_elections(qkv_buf_t *out, const qkv_metrics_t *m) {
    s_metric(out, "qkv_term", "gauge",
             "The highest term this node has seen (leaderships).", m->term);
    s_metric(out, "qkv_elections_won_total", "counter",
             "PEERS: times this node became leader.", m->elections_won);
    s_metric(out, "qkv_step_downs_total", "counter",
             "PEERS: times this node stopped leading (a higher term, or it "
             "no longer heard a quorum).",
             m->step_downs);
    s_metric(out, "qkv_votes_granted_total", "counter",
             "PEERS: votes this node gave (pre-votes not counted).",
             m->votes_granted);
}

//  Refusals by CURVE and by the limits.

static void s_metric_security(qkv_buf_t *out, const qkv_metrics_t *m) {
    s_metric(out, "qkv_curve_denied_replication_total", "counter",
             "CURVE: replication connections refused (key not in PEERS).",
             m->curve_denied_repl);
    s_metric(out, "qkv_curve_denied_client_total", "counter",
             "CURVE: client connections refused (key not in CLIENT_KEYS).",
             m->curve_denied_client);
    s_metric(out, "qkv_replication_forged_total", "counter",
             "CURVE: replication messages dropped: the routing id named "
             "another member than the key that authenticated them.",
             m->repl_forged);
    s_metric(out, "qkv_client_forbidden_total", "counter",
             "CURVE: zmq-native requests a read-only key may not make.",
             m->client_forbidden);
    s_metric(out, "qkv_writes_overloaded_total", "counter",
             "Writes refused: MAX_PENDING_WRITES were in flight.",
             m->overloaded);
    s_metric(out, "qkv_writes_memory_full_total", "counter",
             "Writes refused: the node held MAX_MEMORY bytes.", m->memory_full);
    s_metric(out, "qkv_client_port_closed_total", "counter",
             "Times the zmq-native client port was closed for a second: "
             "accept failed for want of file descriptors.",
             m->client_port_closed);
    s_metric(out, "qkv_replication_port_closed_total", "counter",
             "Times the replication port was closed for a second: accept "
             "failed for want of file descriptors.",
             m->repl_port_closed);
}

//  Appends a label value escaped as the text format wants.

static void s_label_value(qkv_buf_t *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\')
            qkv_buf_append(out, "\\\\", 2);
        else if (s[i] == '"')
            qkv_buf_append(out, "\\\"", 2);
        else if (s[i] == '\n')
            qkv_buf_append(out, "\\n", 2);
        else
            qkv_buf_append(out, &s[i], 1);
    }
}

//  One gauge family with a sample per follower; which picks the field.

enum { S_ACKED, S_LAG, S_CONNECTED };

static void s_metric_followers(qkv_buf_t *out, const qkv_node_status_t *st,
                               const char *name, const char *help, int which) {
    size_t count = st->follower_count;
    if (count > QKV_MAX_FOLLOWERS)
        count = QKV_MAX_FOLLOWERS;
    s_metric_head(out, name, "gauge", help);
    for (size_t i = 0; i < count; i++) {
        const qkv_follower_status_t *f = &st->followers[i];
        uint64_t value = which == S_ACKED ? f->acked_index
                         : which == S_LAG ? f->lag
                                          : (uint64_t)f->connected;
        qkv_buf_printf(out, "%s{follower=\"", name);
        s_label_value(out, f->id, strnlen(f->id, sizeof f->id));
        qkv_buf_append(out, "\",endpoint=\"", 12);
        s_label_value(out, f->endpoint,
                      strnlen(f->endpoint, sizeof f->endpoint));
        qkv_buf_printf(out, "\"} %" PRIu64 "\n", value);
    }
}

//  The label value of each protocol, indexed by qkv_proto_t.

static const char *const s_proto_names[QKV_PROTO_COUNT] = {"rest", "zmq"};

//  One counter family with a sample per protocol; which picks the field.

enum { S_WRITES, S_COMMITS, S_TIMEOUTS, S_BAD_REQUESTS };

static void s_metric_by_proto(qkv_buf_t *out, const qkv_metrics_t *m,
                              const char *name, const char *help, int which) {
    s_metric_head(out, name, "counter", help);
    for (size_t p = 0; p < QKV_PROTO_COUNT; p++) {
        const qkv_proto_metrics_t *pm = &m->by_proto[p];
        uint64_t value = which == S_WRITES     ? pm->writes
                         : which == S_COMMITS  ? pm->commits
                         : which == S_TIMEOUTS ? pm->timeouts
                                               : pm->bad_requests;
        qkv_buf_printf(out, "%s{proto=\"%s\"} %" PRIu64 "\n", name,
                       s_proto_names[p], value);
    }
}

//  The histogram, one series per protocol: the node counts per bucket,
//  Prometheus wants running totals. _count is the +Inf total so the two
//  always agree.

static void s_metric_latency(qkv_buf_t *out, const qkv_metrics_t *m) {
    const char *name = "qkv_write_latency_seconds";

    s_metric_head(out, name, "histogram",
                  "Time from submitting a write to its answer.");
    for (size_t p = 0; p < QKV_PROTO_COUNT; p++) {
        const qkv_proto_metrics_t *pm = &m->by_proto[p];
        const char *proto = s_proto_names[p];
        uint64_t total = 0;
        for (size_t i = 0; i < QKV_LATENCY_BUCKETS; i++) {
            total += pm->latency_le[i];
            qkv_buf_printf(out,
                           "%s_bucket{proto=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                           name, proto, qkv_latency_bounds_s[i], total);
        }
        total += pm->latency_le[QKV_LATENCY_BUCKETS];
        qkv_buf_printf(out, "%s_bucket{proto=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                       name, proto, total);
        qkv_buf_printf(out, "%s_sum{proto=\"%s\"} %.9g\n", name, proto,
                       pm->latency_sum_s);
        qkv_buf_printf(out, "%s_count{proto=\"%s\"} %" PRIu64 "\n", name, proto,
                       total);
    }
}

//  REST requests access control refused (HTTP_TOKENS_FILE).

static void s_metric_denied(qkv_buf_t *out, qkv_gateway_t *gw) {
    const char *name = "qkv_http_denied_total";
    s_metric_head(out, name, "counter",
                  "REST requests refused by HTTP_TOKENS_FILE: no or a wrong "
                  "token (unauthorized), a read token on a write route "
                  "(forbidden).");
    for (int i = 0; i < 2; i++)
        qkv_buf_printf(out, "%s{reason=\"%s\"} %" PRIu64 "\n", name,
                       i ? "forbidden" : "unauthorized",
                       (uint64_t)atomic_load_explicit(&gw->denied[i],
                                                      memory_order_relaxed));
}

static void s_metric_info(qkv_buf_t *out, const qkv_config_t *cfg,
                          const qkv_node_status_t *st) {
    s_metric_head(out, "qkv_node_info", "gauge",
                  "Always 1; labels name the node, its role, its cluster id "
                  "and term.");
    qkv_buf_append(out, "qkv_node_info{id=\"", 18);
    s_label_value(out, cfg->node_id,
                  strnlen(cfg->node_id, sizeof cfg->node_id));
    qkv_buf_printf(out, "\",role=\"%s\",cluster_id=\"", s_role_name(st->role));
    s_label_value(out, st->cluster_id,
                  strnlen(st->cluster_id, sizeof st->cluster_id));
    qkv_buf_printf(out, "\",term=\"%" PRIu64 "\"} 1\n", st->term);
}

static int s_handle_metrics(s_req_t *req) {
    qkv_node_t *node = req->gw->node;
    qkv_store_t *store = qkv_node_store(node);
    qkv_node_status_t *st = &req->w->status;
    qkv_buf_t *out = req->out;
    qkv_metrics_t m;

    memset(&m, 0, sizeof m);
    memset(st, 0, sizeof *st);
    qkv_node_metrics(node, &m);
    qkv_node_status(node, st);
    s_metric_info(out, req->gw->cfg, st);
    s_metric_by_proto(out, &m, "qkv_writes_total",
                      "Writes submitted to the log.", S_WRITES);
    s_metric_by_proto(out, &m, "qkv_commits_total",
                      "Writes answered committed.", S_COMMITS);
    s_metric_by_proto(out, &m, "qkv_quorum_timeouts_total",
                      "Writes answered 503: not confirmed in time.",
                      S_TIMEOUTS);
    s_metric_by_proto(out, &m, "qkv_bad_requests_total",
                      "Requests refused as invalid.", S_BAD_REQUESTS);
    s_metric_denied(out, req->gw);
    s_metric(out, "qkv_malformed_frames_total", "counter",
             "Replication frames dropped as malformed.", m.malformed_frames);
    s_metric(out, "qkv_repl_frames_sent_total", "counter",
             "Replication frames sent (leader: APPENDs, follower: ACKs).",
             m.frames_sent);
    s_metric(out, "qkv_repl_frames_received_total", "counter",
             "Replication frames read (leader: ACKs, follower: APPENDs).",
             m.frames_received);
    s_metric(out, "qkv_repl_entries_sent_total", "counter",
             "Leader: log entries sent in APPENDs, resends included.",
             m.entries_sent);
    s_metric(out, "qkv_sessions", "gauge", "Client sessions held.", m.sessions);
    s_metric(out, "qkv_session_records", "gauge",
             "Write results the client sessions remember.", m.session_records);
    s_metric(out, "qkv_client_disconnects_total", "counter",
             "zmq-native client connections that ended: a client leaving, "
             "or ZeroMQ dropping a frame over max_frame_bytes.",
             m.client_disconnects);
    s_metric_durability(out, &m, st);
    s_metric_elections(out, &m);
    s_metric_security(out, &m);
    s_metric(out, "qkv_last_index", "gauge", "Last log entry held.",
             st->last_index);
    s_metric(out, "qkv_commit_index", "gauge",
             "Leader's commit index as this node knows it.", st->commit_index);
    s_metric(out, "qkv_applied_index", "gauge",
             "Last log entry applied to the store.", st->applied_index);
    s_metric(out, "qkv_keys", "gauge", "Keys in the store.",
             qkv_store_count(store));
    s_metric(out, "qkv_store_overhead_bytes", "gauge",
             "Bytes the store holds beyond keys and values (estimate).",
             qkv_store_overhead_bytes(store));
    s_metric_followers(out, st, "qkv_follower_acked_index",
                       "Last index each follower acknowledged.", S_ACKED);
    s_metric_followers(out, st, "qkv_follower_lag",
                       "Leader's last index minus the follower's.", S_LAG);
    s_metric_followers(out, st, "qkv_follower_connected",
                       "1 when the follower acked recently.", S_CONNECTED);
    s_metric_latency(out, &m);
    return s_send(req, 200, S_PROMETHEUS, out);
}

//  ---------------------------------------------------------------------
//  Dispatch

static const s_route_t *s_route_find(const char *path) {
    if (path == NULL)
        return NULL;
    for (size_t i = 0; i < S_ROUTE_COUNT; i++)
        if (strcmp(s_routes[i].path, path) == 0)
            return &s_routes[i];
    return NULL;
}

static int s_dispatch(s_req_t *req) {
    const char *method = req->ri->request_method;
    const char *path = req->ri->local_uri;
    const s_route_t *route = s_route_find(path);

    req->route = route;
    if (req->w == NULL) {
        req->close = true;
        return s_error(req, 503, "unavailable", "out of memory");
    }
    if (route == NULL) {
        s_skip_body(req);
        return s_refuse(req, 404, "not_found", "no route %s %.256s",
                        method ? method : "?", path ? path : "?");
    }
    if (method == NULL || strcmp(method, route->method) != 0) {
        s_skip_body(req);
        qkv_buf_printf(req->aux, "Allow: %s\r\n", route->method);
        return s_refuse(req, 405, "method_not_allowed", "%s takes %s only",
                        route->path, route->method);
    }
    qkv_rest_verdict_t verdict = qkv_rest_authorize(
        req->gw->has_tokens ? &req->gw->tokens : NULL, route->need,
        mg_get_header(req->conn, "Authorization"), &req->role);
    if (verdict != QKV_REST_ALLOWED)
        return s_deny(req, verdict);
    if (route->leader_only && !qkv_node_is_leader(req->gw->node)) {
        s_skip_body(req); /* before answering, as the body is unused */
        return s_not_leader(req);
    }
    if (!route->reads_body)
        s_skip_body(req);
    return route->fn(req);
}

//  The one request handler, registered for every route and for "/" (all
//  other paths); it matches paths exactly itself.

static int s_on_request(struct mg_connection *conn, void *cbdata) {
    (void)cbdata;
    s_req_t req;
    s_req_init(&req, conn);
    int status = s_dispatch(&req);
    s_req_done(&req);
    return status;
}

//  Errors civetweb answers itself (malformed request, headers too large,
//  ...): the same JSON body as ours, and the connection closes.

static const char *s_error_code(int status) {
    if (status == 401)
        return "unauthorized";
    if (status == 403)
        return "forbidden";
    if (status == 404)
        return "not_found";
    if (status == 405)
        return "method_not_allowed";
    if (status == 413 || status == 414 || status == 431)
        return "too_large";
    return status < 500 ? "bad_request" : "unavailable";
}

static int s_on_http_error(struct mg_connection *conn, int status,
                           const char *errmsg) {
    s_req_t req;
    s_req_init(&req, conn);
    req.close = true;
    if (status == 411) {
        status = 400; /* a bad Content-Length; 411 is not in our API */
        errmsg = "invalid Content-Length";
    }
    if (req.gw != NULL && status >= 400 && status < 500)
        qkv_node_count_bad_request(req.gw->node, QKV_PROTO_REST);
    s_error(&req, status, s_error_code(status),
            errmsg && errmsg[0] ? errmsg : s_status_text(status));
    s_req_done(&req);
    return 0; /* handled */
}

//  civetweb's own log lines go to ours. While it starts they are kept
//  instead (the first is why mg_start failed) for qkv_gateway_new's err.

static int s_on_log(const struct mg_connection *conn, const char *message) {
    qkv_gateway_t *gw = NULL;
    bool started = true;
    if (conn != NULL && mg_get_context(conn) != NULL)
        gw = mg_get_user_data(mg_get_context(conn));
    if (gw != NULL) {
        pthread_mutex_lock(&gw->mutex);
        started = gw->started;
        if (!started && gw->start_error[0] == '\0')
            snprintf(gw->start_error, sizeof gw->start_error, "%s", message);
        pthread_mutex_unlock(&gw->mutex);
    }
    if (started)
        qkv_warn("http: %s", message);
    return 1;
}

//  ---------------------------------------------------------------------
//  Construction

//  mg_init_library(0) answers the features it set up, which for 0 is 0
//  whether it worked or not; a real failure (no thread-local key) makes
//  mg_start fail later with its own message, so the answer is not kept.

static pthread_once_t s_library_once = PTHREAD_ONCE_INIT;

static void s_library_init(void) {
    mg_init_library(0);
}

//  Derives the limits the handlers use from the node's settings.

static void s_set_limits(qkv_gateway_t *self) {
    const qkv_config_t *cfg = self->cfg;
    size_t pair = s_sat_add(cfg->max_key_bytes, cfg->max_value_bytes);

    self->max_body = cfg->max_body_bytes;

    //  Room for the longest key percent-encoded, plus headers
    size_t request = s_sat_add(s_sat_mul(3, cfg->max_key_bytes), 8192);
    if (request < S_MIN_REQUEST_SIZE)
        request = S_MIN_REQUEST_SIZE;
    if (request > S_MAX_REQUEST_SIZE)
        request = S_MAX_REQUEST_SIZE;
    self->max_request_size = request;

    //  A decoded key is never longer than the request that carried it
    size_t key = cfg->max_key_bytes < request ? cfg->max_key_bytes : request;
    self->key_size = key + 1;

    //  Escaping can take 6 bytes per input byte
    size_t worst = s_sat_add(s_sat_mul(6, pair), 64);
    size_t keys = S_DUMP_HARD_BYTES / worst;
    if (keys < 1)
        keys = 1;
    if (keys > S_DUMP_MAX_KEYS)
        keys = S_DUMP_MAX_KEYS;
    self->dump_max_keys = keys;

    snprintf(self->leader_url, sizeof self->leader_url, "%s", cfg->leader_url);
    size_t len = strlen(self->leader_url);
    while (len > 0 && self->leader_url[len - 1] == '/')
        self->leader_url[--len] = '\0';
}

//  ---------------------------------------------------------------------
//  Secrets: the tokens file, the certificate and its key

//  Reads a whole small file (at most S_SECRET_FILE_MAX bytes) into a
//  malloc'd buffer for qkv_free_secret; what names its setting in
//  messages. When private, a file group or others may use is refused, as
//  ssh refuses such a key (qkv_read_file checks the file it opened).
//  Returns NULL with the reason in err.

static char *s_read_file(const char *what, const char *path, bool private,
                         size_t *len, char *err, size_t err_size) {
    char why[4400];
    char *data =
        qkv_read_file(path, S_SECRET_FILE_MAX, private, len, why, sizeof why);
    if (!data)
        snprintf(err, err_size, "%s %s", what, why);
    return data;
}

//  HTTP_TOKENS_FILE: read, checked and parsed; its text is wiped at once.

static int s_load_tokens(qkv_gateway_t *self, char *err, size_t err_size) {
    const char *path = self->cfg->http_tokens_file;
    size_t len = 0, line = 0;
    char why[256];

    if (path[0] == '\0')
        return 0;
    char *text =
        s_read_file("HTTP_TOKENS_FILE", path, true, &len, err, err_size);
    if (text == NULL)
        return -1;
    int rc =
        qkv_rest_tokens_parse(text, len, &self->tokens, &line, why, sizeof why);
    qkv_free_secret(text, len + 1);
    if (rc != 0 && line > 0)
        snprintf(err, err_size, "HTTP_TOKENS_FILE %s:%zu: %s", path, line, why);
    else if (rc != 0)
        snprintf(err, err_size, "HTTP_TOKENS_FILE %s: %s", path, why);
    self->has_tokens = rc == 0;
    return rc;
}

//  Debian's civetweb 1.15 loads OpenSSL itself, by dlopen("libssl.so")
//  and dlopen("libcrypto.so") (the unversioned names only libssl-dev
//  installs), and looks up the OpenSSL 1.1 functions by name. OpenSSL 3
//  no longer exports SSL_get_peer_certificate (a macro now; civetweb
//  issue #1334), so civetweb refuses to start TLS with it. qkv's
//  compatibility library (qkv_ssl_compat.c: soname libssl.so, the missing
//  function, the rest from libssl.so.3) is loaded first when it is found
//  beside the program, so civetweb's dlopen("libssl.so") gets it. The same
//  lookup civetweb makes is then made here, so that a node that still
//  cannot do TLS says why and what to do.

static void s_tls_compat(void) {
    char exe[4096], path[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = '\0';
    const char *where[] = {"%s/libqkv-ssl-compat.so",
                           "%s/../lib/qkv/libqkv-ssl-compat.so"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        snprintf(path, sizeof path, where[i], exe);
        if (access(path, R_OK) == 0 && dlopen(path, RTLD_NOW | RTLD_GLOBAL)) {
            qkv_info("http: TLS through %s (civetweb 1.15 and OpenSSL 3)",
                     path);
            return;
        }
    }
}

static int s_tls_probe(char *err, size_t err_size) {
    /* first: once the real libssl.so is loaded under that name (OpenSSL 3
       stays loaded), nothing else can take the name */
    s_tls_compat();
    void *ssl = dlopen("libssl.so", RTLD_LAZY | RTLD_LOCAL);
    if (ssl == NULL) {
        snprintf(err, err_size,
                 "TLS_CERT_FILE: civetweb loads OpenSSL as libssl.so, which "
                 "cannot be loaded (%s): install libssl-dev",
                 dlerror());
        return -1;
    }
    bool usable = dlsym(ssl, "SSL_get_peer_certificate") != NULL;
    dlclose(ssl);
    if (!usable) {
        snprintf(err, err_size,
                 "TLS_CERT_FILE: civetweb %s cannot use the OpenSSL "
                 "installed (libssl.so has no SSL_get_peer_certificate: "
                 "OpenSSL 3, civetweb issue #1334) and qkv's "
                 "libqkv-ssl-compat.so is not beside qkv-node; serve HTTPS "
                 "from a TLS proxy in front of the node instead",
                 mg_version());
        return -1;
    }
    return 0;
}

//  The PEM file for civetweb's ssl_certificate, which must hold the
//  certificate (its chain after it) and the private key together. With
//  TLS_KEY_FILE apart, the two are copied into an anonymous memory file
//  (memfd: never on disk, gone once closed) that civetweb reads through
//  /proc/self/fd while it starts: *memfd gets it, to close after
//  mg_start. The files are read here first so that a missing or
//  unreadable one is named plainly.

static int s_tls_pem(const qkv_config_t *cfg, char *pem, size_t pem_size,
                     int *memfd, char *err, size_t err_size) {
    size_t cert_len = 0, key_len = 0;
    bool apart = cfg->tls_key_file[0] != '\0' &&
                 strcmp(cfg->tls_key_file, cfg->tls_cert_file) != 0;
    char *key = NULL;
    int fd = -1, rc = -1;

    *memfd = -1;
    char *cert = s_read_file("TLS_CERT_FILE", cfg->tls_cert_file, false,
                             &cert_len, err, err_size);
    if (cert != NULL && apart)
        key = s_read_file("TLS_KEY_FILE", cfg->tls_key_file, false, &key_len,
                          err, err_size);
    if (cert == NULL || (apart && key == NULL)) {
        /* err says which */
    } else if (!mg_check_feature(MG_FEATURES_TLS))
        snprintf(err, err_size,
                 "TLS_CERT_FILE is set, but this civetweb has no TLS");
    else if (s_tls_probe(err, err_size) != 0) {
        /* err says why */
    } else if (!apart) {
        snprintf(pem, pem_size, "%s", cfg->tls_cert_file);
        rc = 0;
    } else if ((fd = memfd_create("qkv-tls-pem", MFD_CLOEXEC)) < 0)
        snprintf(err, err_size, "TLS_KEY_FILE: memfd_create: %s",
                 strerror(errno));
    else if (qkv_write_all(fd, cert, cert_len) != 0 ||
             qkv_write_all(fd, "\n", 1) != 0 ||
             qkv_write_all(fd, key, key_len) != 0)
        snprintf(err, err_size, "TLS_KEY_FILE: copying to memory: %s",
                 strerror(errno));
    else {
        *memfd = fd;
        snprintf(pem, pem_size, "/proc/self/fd/%d", fd);
        rc = 0;
    }
    if (rc != 0 && fd >= 0)
        close(fd);
    qkv_free_secret(cert, cert_len + 1);
    qkv_free_secret(key, key_len + 1);
    return rc;
}

//  ---------------------------------------------------------------------
//  Starting civetweb

//  When the process has no descriptor left, civetweb 1.15's master thread
//  spins: poll says the listening socket is readable, accept fails with
//  EMFILE (silently), poll again, at 100% of a core until some descriptor
//  is closed (measured; REST waits meanwhile, nothing crashes). It holds
//  at most HTTP_THREADS + connection_queue connections (then it stops
//  accepting), so an open-file limit above that plus the node's own
//  sockets keeps it from happening through REST alone; say so when the
//  limit is lower.

static void s_check_fd_limit(const qkv_config_t *cfg) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    unsigned long long need = (unsigned long long)cfg->http_threads +
                              (unsigned long long)atoi(S_CONNECTION_QUEUE) +
                              S_FD_RESERVE;
    if ((unsigned long long)rl.rlim_cur < need)
        qkv_warn("http: the open-file limit (%llu) is below HTTP_THREADS + "
                 "%s + %d = %llu; when descriptors run out civetweb's "
                 "accept loop spins at 100%% CPU until one is closed: raise "
                 "it (ulimit -n)",
                 (unsigned long long)rl.rlim_cur, S_CONNECTION_QUEUE,
                 S_FD_RESERVE, need);
}

//  Starts civetweb; the reason for a failure goes to err.
//
//  Timeouts: civetweb's request_timeout_ms bounds the request line and
//  headers of a connection's first request (from the moment a worker
//  takes it) and each read or write without progress;
//  keep_alive_timeout_ms does the same for every later request on a
//  kept-alive connection, its idle time included. Both are
//  REQUEST_TIMEOUT_MS; s_read_exact bounds a body. civetweb looks at the
//  clock only after a read that waited, so a client that stops is cut off
//  after one to two REQUEST_TIMEOUT_MS.

static int s_start(qkv_gateway_t *self, char *err, size_t err_size) {
    const qkv_config_t *cfg = self->cfg;
    bool tls = cfg->tls_cert_file[0] != '\0';
    char ports[128], threads[16], request_size[24], timeout[16];
    char pem[4200];
    int memfd = -1;

    if (tls && s_tls_pem(cfg, pem, sizeof pem, &memfd, err, err_size) != 0)
        return -1;
    if (strchr(cfg->bind, ':') != NULL) /* an IPv6 address */
        snprintf(ports, sizeof ports, "[%s]:%d%s", cfg->bind, cfg->port,
                 tls ? "s" : "");
    else
        snprintf(ports, sizeof ports, "%s:%d%s", cfg->bind, cfg->port,
                 tls ? "s" : "");
    snprintf(threads, sizeof threads, "%d", cfg->http_threads);
    snprintf(request_size, sizeof request_size, "%zu", self->max_request_size);
    snprintf(timeout, sizeof timeout, "%d", cfg->request_timeout_ms);
    const char *options[32];
    size_t n = 0;
#define S_OPTION(name, value) (options[n++] = (name), options[n++] = (value))
    S_OPTION("listening_ports", ports);
    S_OPTION("num_threads", threads);
    S_OPTION("enable_keep_alive", "yes");
    S_OPTION("keep_alive_timeout_ms", timeout);
    S_OPTION("request_timeout_ms", timeout);
    S_OPTION("connection_queue", S_CONNECTION_QUEUE);
    S_OPTION("tcp_nodelay", "1");
    S_OPTION("max_request_size", request_size);
    S_OPTION("access_control_allow_methods", ""); /* OPTIONS: 405, no CORS */
    S_OPTION("access_control_allow_origin", "");
    if (tls) {
        S_OPTION("ssl_certificate", pem);
        S_OPTION("ssl_protocol_version", S_TLS_MIN_VERSION);
    }
#undef S_OPTION
    options[n] = NULL;

    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.init_thread = s_on_thread_start;
    callbacks.exit_thread = s_on_thread_stop;
    callbacks.http_error = s_on_http_error;
    callbacks.log_message = s_on_log;

    char text[256] = "";
    unsigned code = 0;
    struct mg_error_data error = {&code, text, sizeof text};
    struct mg_init_data init = {&callbacks, self, options};
    self->ctx = mg_start2(&init, &error);
    if (memfd >= 0)
        close(memfd); /* civetweb has loaded it (ssl_short_trust is off) */

    pthread_mutex_lock(&self->mutex);
    self->started = true;
    pthread_mutex_unlock(&self->mutex);
    if (self->ctx != NULL)
        return 0;
    if (self->start_error[0] != '\0' && tls)
        snprintf(err, err_size,
                 "HTTP server (TLS_CERT_FILE %s, TLS_KEY_FILE %s; civetweb "
                 "reads them from %s): %s",
                 cfg->tls_cert_file,
                 cfg->tls_key_file[0] ? cfg->tls_key_file : "(none)", pem,
                 self->start_error);
    else if (self->start_error[0] != '\0')
        snprintf(err, err_size, "HTTP server: %s", self->start_error);
    else
        snprintf(err, err_size, "HTTP server on %s: %s", ports,
                 text[0] ? text : "civetweb failed to start");
    return -1;
}

//  qkv checks bearer tokens itself (s_dispatch). Without an authorization
//  handler civetweb looks for a .htpasswd file (with no document root:
//  /.htpasswd) on every request, a stat per request, and would start
//  asking for Digest credentials if someone created that file.
static int s_on_authorize(struct mg_connection *conn, void *cbdata) {
    (void)conn;
    (void)cbdata;
    return 1;
}

qkv_gateway_t *qkv_gateway_new(qkv_node_t *node, char *err, size_t err_size) {
    const qkv_config_t *cfg = qkv_node_config(node);

    pthread_once(&s_library_once, s_library_init);
    if (cfg->http_threads < 1 || cfg->port < 1 || cfg->port > 65535) {
        snprintf(err, err_size, "bad HTTP_THREADS or PORT");
        return NULL;
    }
    qkv_gateway_t *self = calloc(1, sizeof *self);
    if (self == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    self->node = node;
    self->cfg = cfg;
    pthread_mutex_init(&self->mutex, NULL);
    pthread_mutex_init(&self->watch_mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->watch_cond, &attr);
    pthread_condattr_destroy(&attr);
    s_set_limits(self);
    s_check_fd_limit(cfg);
    if (s_load_tokens(self, err, err_size) != 0 ||
        s_watchdog_start(self, err, err_size) != 0 ||
        s_start(self, err, err_size) != 0) {
        qkv_gateway_destroy(&self);
        return NULL;
    }
    mg_set_auth_handler(self->ctx, "/", s_on_authorize, NULL);
    for (size_t i = 0; i < S_ROUTE_COUNT; i++)
        mg_set_request_handler(self->ctx, s_routes[i].path, s_on_request, NULL);
    mg_set_request_handler(self->ctx, "/", s_on_request, NULL);
    qkv_info("http: listening on %s://%s:%d with %d workers, bearer tokens "
             "%s",
             cfg->tls_cert_file[0] ? "https" : "http", cfg->bind, cfg->port,
             cfg->http_threads, self->has_tokens ? "required" : "off");
    return self;
}

void qkv_gateway_destroy(qkv_gateway_t **self_p) {
    if (self_p == NULL || *self_p == NULL)
        return;
    qkv_gateway_t *self = *self_p;
    if (self->ctx != NULL)
        mg_stop(self->ctx); /* joins the workers */
    s_watchdog_stop(self);  /* no worker left: no watch left */
    qkv_rest_tokens_free(&self->tokens);
    pthread_cond_destroy(&self->watch_cond);
    pthread_mutex_destroy(&self->watch_mutex);
    pthread_mutex_destroy(&self->mutex);
    free(self);
    *self_p = NULL;
}
