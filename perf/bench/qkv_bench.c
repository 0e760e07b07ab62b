/*  qkv_bench.c - the load generator: drives a running qkv cluster over
    HTTP (keep-alive, one connection per client) or over the zmq-native
    protocol (one DEALER per client, a pipelining depth), or a Redis
    master with SET + WAIT (--depth SETs and one WAIT per round trip), and
    prints one JSON line per run.

    Security, to measure what it costs: HTTP with a bearer token and over
    TLS (OpenSSL, one session per connection, kept alive; the server's
    certificate is not checked), zmq with CURVE (this client's key pair
    and the node's public key on every DEALER).

    Every latency is kept (one slot per operation) and sorted at the end,
    so percentiles are exact. The bench reports its own CPU use so a run
    where it, not the server, was the bottleneck can be told apart.
*/
#include "qkv_clock.h"
#include "qkv_cmsg.h"
#include "qkv_hash.h"
#include "qkv_key.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef enum { M_HTTP, M_ZMQ, M_REDIS } s_mode_t;

typedef struct {
    s_mode_t mode;
    char host[256];      /* http, redis */
    int port;            /* http, redis */
    char endpoint[300];  /* zmq */
    int clients;
    long ops;            /* total operations */
    int keys;
    int value_size;
    double read_ratio;   /* 0..1 */
    double duration_s;   /* cap; 0 = none */
    int depth;           /* zmq: requests in flight per client; redis:
                            commands per round trip */
    bool untagged;       /* zmq: writes without client_id/client_seq */
    int quorum;          /* redis: WAIT numreplicas; a label otherwise */
    int wait_timeout_ms; /* redis: WAIT timeout */
    char label[128];
    char key_prefix[64];
    bool sequential;     /* keys in order 0..keys-1, not at random */
    bool tls;            /* http, redis: over TLS */
    char auth[300];      /* http: "Authorization: Bearer T\r\n", or "" */
    bool curve;          /* zmq: CURVE with the three keys below (Z85) */
    char curve_secret[QKV_KEY_TEXT + 1];
    char curve_public[QKV_KEY_TEXT + 1];
    char curve_server[QKV_KEY_TEXT + 1];
} s_opts_t;

/* Failure kinds, reported by name. */
enum { F_CONNECT, F_IO, F_HTTP_4XX, F_HTTP_503, F_HTTP_OTHER, F_NOT_FOUND,
       F_QUORUM, F_PROTOCOL, F_TIMEOUT, F_COUNT };
static const char *s_fail_names[F_COUNT] = {
    "connect", "io", "http_4xx", "http_503", "http_other", "not_found",
    "quorum", "protocol", "timeout"};

typedef struct {
    const s_opts_t *o;
    int id;
    long quota;          /* operations this client runs */
    double *lat_ms;      /* one per completed-ok operation */
    long ok;
    long failed[F_COUNT];
    uint64_t rng;
    char *value;         /* value_size bytes of 'v' */
} s_client_t;

static atomic_bool s_stop;
static struct timespec s_start;

static double s_now_ms(void) {
    return (double)qkv_now_us() / 1e3;
}

static uint64_t s_rand(s_client_t *c) {
    return qkv_xorshift64(&c->rng);
}

static bool s_is_read(s_client_t *c) {
    return c->o->read_ratio > 0 &&
           (double)(s_rand(c) % 1000000) / 1e6 < c->o->read_ratio;
}

static atomic_long s_next_key; /* --sequential */

static int s_key(s_client_t *c, char *buf, size_t size) {
    long k = c->o->sequential ? atomic_fetch_add(&s_next_key, 1)
                              : (long)(s_rand(c) % (uint64_t)c->o->keys);
    return snprintf(buf, size, "%skey-%ld", c->o->key_prefix,
                    k % c->o->keys);
}

static bool s_over_time(const s_opts_t *o, double start_ms) {
    return atomic_load(&s_stop) ||
           (o->duration_s > 0 && s_now_ms() - start_ms > o->duration_s * 1e3);
}

/*  =====================================================================
    TCP (HTTP and Redis), in the clear or over TLS */

/* One connection: a socket and, with --tls, its TLS session. */
typedef struct {
    int fd;   /* -1: closed */
    SSL *ssl; /* NULL: in the clear */
} s_conn_t;

static SSL_CTX *s_tls; /* --tls: every client's sessions come from it */

static void s_close(s_conn_t *c) {
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* close_notify; no wait for the peer's */
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->ssl = NULL;
}

/* Connects c to host:port (TCP_NODELAY, a 10 s receive timeout) and, with
   --tls, makes the TLS handshake; returns 0 or -1 (c closed). */
static int s_connect(s_conn_t *c, const char *host, int port) {
    struct addrinfo hints = {0}, *ai;
    char service[16];
    c->fd = -1;
    c->ssl = NULL;
    snprintf(service, sizeof service, "%d", port);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, service, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c->fd = fd;
    if (!s_tls)
        return 0;
    /* no certificate check (SSL_VERIFY_NONE): a benchmark, not a client */
    struct in_addr ip;
    bool named = inet_pton(AF_INET, host, &ip) != 1; /* SNI: names only */
    if (!(c->ssl = SSL_new(s_tls)) || SSL_set_fd(c->ssl, fd) != 1 ||
        (named && SSL_set_tlsext_host_name(c->ssl, host) != 1) ||
        SSL_connect(c->ssl) != 1) {
        s_close(c);
        return -1;
    }
    return 0;
}

static int s_write_all(s_conn_t *c, const char *data, size_t len) {
    while (len) {
        ssize_t n;
        if (c->ssl) {
            int w = SSL_write(c->ssl, data, len > INT_MAX ? INT_MAX : (int)len);
            n = w > 0 ? w : -1;
        } else {
            n = send(c->fd, data, len, MSG_NOSIGNAL);
        }
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A receive buffer that keeps what follows one reply. */
typedef struct {
    char data[1 << 16];
    size_t size;
} s_rbuf_t;

static int s_fill(s_conn_t *c, s_rbuf_t *b) {
    if (b->size == sizeof b->data)
        return -1;
    size_t room = sizeof b->data - b->size;
    ssize_t n;
    if (c->ssl) {
        int r = SSL_read(c->ssl, b->data + b->size, (int)room);
        n = r > 0 ? r : -1;
    } else {
        n = recv(c->fd, b->data + b->size, room, 0);
    }
    if (n <= 0)
        return -1;
    b->size += (size_t)n;
    return 0;
}

static void s_consume(s_rbuf_t *b, size_t n) {
    memmove(b->data, b->data + n, b->size - n);
    b->size -= n;
}

/* Reads one HTTP response; returns its status or -1. */
static int s_http_response(s_conn_t *conn, s_rbuf_t *b) {
    char *end;
    while (!(end = memmem(b->data, b->size, "\r\n\r\n", 4)))
        if (s_fill(conn, b) != 0)
            return -1;
    size_t head = (size_t)(end - b->data) + 4;
    int status = 0;
    if (sscanf(b->data, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    long length = 0;
    for (char *p = b->data; p < end; p++)
        if (strncasecmp(p, "\r\nContent-Length:", 17) == 0)
            length = strtol(p + 17, NULL, 10);
    while (b->size < head + (size_t)length)
        if (s_fill(conn, b) != 0)
            return -1;
    s_consume(b, head + (size_t)length);
    return status;
}

static int s_http_op(s_client_t *c, s_conn_t *conn, s_rbuf_t *b, char *req,
                     size_t size) {
    char key[96];
    int klen = s_key(c, key, sizeof key);
    int n;
    if (s_is_read(c))
        n = snprintf(req, size,
                     "GET /get?key=%s HTTP/1.1\r\nHost: bench\r\n%s\r\n",
                     key, c->o->auth);
    else
        n = snprintf(req, size,
                     "POST /put HTTP/1.1\r\nHost: bench\r\n%sContent-Type: "
                     "application/json\r\nContent-Length: %d\r\n\r\n"
                     "{\"key\":\"%s\",\"value\":\"%s\"}",
                     c->o->auth, klen + c->o->value_size + 21, key, c->value);
    if (s_write_all(conn, req, (size_t)n) != 0)
        return -1;
    return s_http_response(conn, b);
}

static void s_run_http(s_client_t *c) {
    s_conn_t conn;
    if (s_connect(&conn, c->o->host, c->o->port) != 0) {
        c->failed[F_CONNECT] += c->quota;
        return;
    }
    s_rbuf_t *b = calloc(1, sizeof *b);
    size_t req_size = (size_t)c->o->value_size + 512 + sizeof c->o->auth;
    char *req = malloc(req_size);
    double start = s_now_ms();
    for (long i = 0; i < c->quota && !s_over_time(c->o, start); i++) {
        double t0 = s_now_ms();
        int status = s_http_op(c, &conn, b, req, req_size);
        double ms = s_now_ms() - t0;
        if (status == 200) {
            c->lat_ms[c->ok++] = ms;
        } else if (status < 0) {
            c->failed[F_IO]++;
            s_close(&conn);
            b->size = 0;
            if (s_connect(&conn, c->o->host, c->o->port) != 0) {
                c->failed[F_CONNECT] += c->quota - i - 1;
                break;
            }
        } else {
            c->failed[status == 404   ? F_NOT_FOUND
                      : status == 503 ? F_HTTP_503
                      : status < 500  ? F_HTTP_4XX
                                      : F_HTTP_OTHER]++;
        }
    }
    s_close(&conn);
    free(req);
    free(b);
}

/* Reads one RESP reply line (simple, error, integer) or bulk string;
   returns its first byte ('+', '-', ':', '$') or -1; *num gets the
   integer of ':' replies. */
static int s_resp(s_conn_t *conn, s_rbuf_t *b, long *num) {
    char *eol;
    while (!(eol = memmem(b->data, b->size, "\r\n", 2)))
        if (s_fill(conn, b) != 0)
            return -1;
    int type = b->data[0];
    size_t line = (size_t)(eol - b->data) + 2;
    long n = strtol(b->data + 1, NULL, 10);
    if (num)
        *num = n;
    if (type == '$' && n >= 0) {
        while (b->size < line + (size_t)n + 2)
            if (s_fill(conn, b) != 0)
                return -1;
        line += (size_t)n + 2;
    }
    s_consume(b, line);
    return type;
}

/* Redis: rounds of --depth commands (GET or SET, as --read-ratio draws
   them) sent together, followed by one WAIT when the round holds a SET,
   and every reply read before the next round; each operation's latency is
   its round's. At depth 1 that is SET + WAIT per write, GET per read. A
   GET of a missing key (nil) counts as not_found, as on qkv. */
static void s_run_redis(s_client_t *c) {
    const s_opts_t *o = c->o;
    s_conn_t conn;
    if (s_connect(&conn, o->host, o->port) != 0) {
        c->failed[F_CONNECT] += c->quota;
        return;
    }
    s_rbuf_t *b = calloc(1, sizeof *b);
    size_t cmd_size = (size_t)o->value_size + 256;
    size_t req_size = cmd_size * (size_t)o->depth + 128;
    char *req = malloc(req_size);
    bool *reads = malloc((size_t)o->depth * sizeof *reads);
    int *type = malloc((size_t)o->depth * sizeof *type);
    long *len = malloc((size_t)o->depth * sizeof *len);
    char wait_cmd[96];
    char q[16], t[16];
    snprintf(q, sizeof q, "%d", o->quorum);
    snprintf(t, sizeof t, "%d", o->wait_timeout_ms);
    int wait_len = snprintf(wait_cmd, sizeof wait_cmd,
                            "*3\r\n$4\r\nWAIT\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
                            strlen(q), q, strlen(t), t);
    double start = s_now_ms();
    long i = 0;
    while (i < c->quota && !s_over_time(o, start)) {
        int m = c->quota - i < o->depth ? (int)(c->quota - i) : o->depth;
        size_t n = 0;
        bool writes = false;
        for (int j = 0; j < m; j++) {
            char key[96];
            int klen = s_key(c, key, sizeof key);
            reads[j] = s_is_read(c);
            writes |= !reads[j];
            n += (size_t)(
                reads[j]
                    ? snprintf(req + n, req_size - n,
                               "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", klen, key)
                    : snprintf(req + n, req_size - n,
                               "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n",
                               klen, key, o->value_size, c->value));
        }
        if (writes) {
            memcpy(req + n, wait_cmd, (size_t)wait_len);
            n += (size_t)wait_len;
        }
        double t0 = s_now_ms();
        bool io = s_write_all(&conn, req, n) != 0;
        for (int j = 0; j < m && !io; j++)
            io = (type[j] = s_resp(&conn, b, &len[j])) < 0;
        long acks = 0;
        int wait_type = 0;
        if (writes && !io)
            io = (wait_type = s_resp(&conn, b, &acks)) < 0;
        double ms = s_now_ms() - t0;
        if (io) {
            c->failed[F_IO] += m;
            break;
        }
        for (int j = 0; j < m; j++) {
            if (type[j] == '-' || (!reads[j] && wait_type == '-'))
                c->failed[F_PROTOCOL]++;
            else if (reads[j] && type[j] == '$' && len[j] < 0)
                c->failed[F_NOT_FOUND]++;
            else if (!reads[j] && acks < o->quorum)
                c->failed[F_QUORUM]++;
            else
                c->lat_ms[c->ok++] = ms;
        }
        i += m;
    }
    s_close(&conn);
    free(reads);
    free(type);
    free(len);
    free(req);
    free(b);
}

/*  =====================================================================
    zmq-native */

typedef struct {
    uint64_t id;
    double sent_ms;
} s_slot_t;

static void s_run_zmq(s_client_t *c, void *ctx) {
    const s_opts_t *o = c->o;
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, hwm = 0, timeout = 10000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (o->curve &&
        (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, o->curve_server,
                        QKV_KEY_TEXT) != 0 ||
         zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, o->curve_public,
                        QKV_KEY_TEXT) != 0 ||
         zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, o->curve_secret,
                        QKV_KEY_TEXT) != 0)) {
        c->failed[F_CONNECT] += c->quota;
        zmq_close(sock);
        return;
    }
    if (zmq_connect(sock, o->endpoint) != 0) {
        c->failed[F_CONNECT] += c->quota;
        zmq_close(sock);
        return;
    }
    qkv_encoder_t *enc = qkv_encoder_new();
    qkv_decoder_limits_t limits = {1u << 30, QKV_CMSG_MAX_KEY,
                                   QKV_CMSG_MAX_VALUE};
    qkv_decoder_t *dec = qkv_decoder_new(&limits);
    /* in-flight requests by id: a request's id is its slot + 1 */
    s_slot_t *slots = calloc((size_t)o->depth, sizeof *slots);
    int *free_slots = malloc((size_t)o->depth * sizeof(int));
    qkv_creq_t *batch = calloc((size_t)o->depth, sizeof *batch);
    char (*keys)[96] = malloc((size_t)o->depth * 96);
    int nfree = o->depth;
    for (int i = 0; i < o->depth; i++)
        free_slots[i] = o->depth - 1 - i;
    long sent = 0, done = 0;
    uint64_t client_id = 1 + s_rand(c) % QKV_CLIENT_ID_MAX;
    double start = s_now_ms();
    /* After a reply, every reply already here is taken before the freed
       slots are refilled, all in one request frame: a pipelining client
       sends in rounds, as Redis's rounds of --depth commands do. */
    bool drain = false;
    while (done < sent || (sent < c->quota && !s_over_time(o, start))) {
        int n = 0;
        double now = s_now_ms();
        while (!drain && nfree && sent < c->quota && !s_over_time(o, start)) {
            int slot = free_slots[--nfree];
            qkv_creq_t *r = &batch[n++];
            memset(r, 0, sizeof *r);
            r->id = (uint64_t)slot + 1; /* id 0 is reserved */
            r->key = keys[slot];
            r->key_len = (size_t)s_key(c, keys[slot], 96);
            if (s_is_read(c)) {
                r->op = QKV_COP_GET;
            } else {
                r->op = QKV_COP_PUT;
                r->value = c->value;
                r->value_len = (size_t)o->value_size;
                r->client_id = o->untagged ? 0 : client_id;
                r->client_seq = r->client_id ? (uint64_t)sent + 1 : 0;
            }
            slots[slot].sent_ms = now;
            sent++;
        }
        if (n) {
            qkv_cenc_begin(enc, (size_t)n);
            for (int i = 0; i < n; i++)
                qkv_cenc_request(enc, &batch[i]);
            size_t size;
            const void *data = qkv_encoder_data(enc, &size);
            if (!data || zmq_send(sock, data, size, 0) < 0) {
                c->failed[F_IO] += n;
                break;
            }
        }
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, sock, n || drain ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&msg);
            if (zmq_errno() == EAGAIN && (n || drain)) {
                drain = false;
                continue;
            }
            c->failed[F_TIMEOUT] += sent - done;
            break;
        }
        const qkv_cres_t *res;
        size_t count;
        double at = s_now_ms();
        if (qkv_cdec_results(dec, zmq_msg_data(&msg), zmq_msg_size(&msg),
                             &res, &count) != 0) {
            c->failed[F_PROTOCOL]++;
            zmq_msg_close(&msg);
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            uint64_t slot = res[i].id - 1;
            if (res[i].id == 0 || slot >= (uint64_t)o->depth) {
                c->failed[F_PROTOCOL]++;
                continue;
            }
            if (res[i].status == QKV_CS_OK)
                c->lat_ms[c->ok++] = at - slots[slot].sent_ms;
            else
                c->failed[res[i].status == QKV_CS_NOT_FOUND ? F_NOT_FOUND
                          : res[i].status == QKV_CS_QUORUM_NOT_REACHED
                              ? F_QUORUM
                              : F_PROTOCOL]++;
            free_slots[nfree++] = (int)slot;
            done++;
        }
        zmq_msg_close(&msg);
        drain = true;
    }
    free(slots);
    free(free_slots);
    free(batch);
    free(keys);
    qkv_encoder_destroy(&enc);
    qkv_decoder_destroy(&dec);
    zmq_close(sock);
}

/*  =====================================================================
    Runs */

static void *s_ctx;

static void *s_client_main(void *arg) {
    s_client_t *c = arg;
    if (c->o->mode == M_HTTP)
        s_run_http(c);
    else if (c->o->mode == M_REDIS)
        s_run_redis(c);
    else
        s_run_zmq(c, s_ctx);
    return NULL;
}

static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_pct(const double *v, long n, double p) {
    if (n == 0)
        return 0;
    long i = (long)ceil(p / 100.0 * (double)n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static double s_tv(struct timeval tv) {
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void s_usage(FILE *out) {
    fprintf(out,
            "usage: qkv-bench [options]\n"
            "  --mode http|zmq|redis    protocol (default http)\n"
            "  --target T               http: HOST:PORT (127.0.0.1:8000);\n"
            "                           zmq: tcp://HOST:PORT "
            "(tcp://127.0.0.1:7000);\n"
            "                           redis: HOST:PORT (127.0.0.1:6379)\n"
            "  --clients N              concurrent clients (10)\n"
            "  --ops N                  total operations (500)\n"
            "  --keys N                 distinct keys (100)\n"
            "  --value-size N           value bytes (10)\n"
            "  --read-ratio F           share of reads, 0..1 (0)\n"
            "  --duration S             stop after S seconds (no cap)\n"
            "  --depth N                zmq: requests in flight per client;\n"
            "                           redis: commands per round trip, "
            "one WAIT after\n"
            "                           a round's SETs (1)\n"
            "  --quorum N               redis: WAIT N; else a label (0)\n"
            "  --wait-timeout-ms N      redis: WAIT timeout (5000)\n"
            "  --label TEXT             copied into the JSON line\n"
            "  --key-prefix TEXT        prefix of every key (none)\n"
            "  --sequential             keys in order (key-0, key-1, ...), "
            "not at random\n"
            "  --untagged               zmq: writes without client_id and "
            "client_seq\n"
            "                           (no session bookkeeping; tagged by "
            "default, as libqkv does)\n"
            "  --curve-key FILE         zmq: CURVE with this client's secret "
            "key file\n"
            "                           (qkv keygen's PREFIX.key, mode 0600)\n"
            "  --server-key KEY|FILE    zmq, with --curve-key: the node's "
            "public key\n"
            "                           (40 characters of Z85, or its .pub "
            "file)\n"
            "  --token T                http: send \"Authorization: Bearer "
            "T\"\n"
            "  --tls                    http, redis: over TLS (OpenSSL, one "
            "session per\n"
            "                           connection, kept alive); the "
            "server's certificate\n"
            "                           is NOT verified: for benchmarks "
            "only\n");
}

static int s_parse(s_opts_t *o, int argc, char **argv) {
    static const struct option longs[] = {
        {"mode", 1, 0, 'm'},       {"target", 1, 0, 't'},
        {"clients", 1, 0, 'c'},    {"ops", 1, 0, 'n'},
        {"keys", 1, 0, 'k'},       {"value-size", 1, 0, 'v'},
        {"read-ratio", 1, 0, 'r'}, {"duration", 1, 0, 'd'},
        {"depth", 1, 0, 'D'},      {"quorum", 1, 0, 'q'},
        {"wait-timeout-ms", 1, 0, 'w'}, {"label", 1, 0, 'l'},
        {"key-prefix", 1, 0, 'p'}, {"sequential", 0, 0, 'S'},
        {"untagged", 0, 0, 'U'},   {"curve-key", 1, 0, 'K'},
        {"server-key", 1, 0, 's'}, {"token", 1, 0, 'T'},
        {"tls", 0, 0, 'L'},
        {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    *o = (s_opts_t){.mode = M_HTTP, .clients = 10, .ops = 500, .keys = 100,
                    .value_size = 10, .depth = 1, .wait_timeout_ms = 5000};
    const char *target = NULL, *secret_file = NULL, *server = NULL;
    const char *token = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (ch) {
        case 'm':
            o->mode = strcmp(optarg, "zmq") == 0     ? M_ZMQ
                      : strcmp(optarg, "redis") == 0 ? M_REDIS
                      : strcmp(optarg, "http") == 0  ? M_HTTP
                                                     : -1;
            if ((int)o->mode < 0)
                return -1;
            break;
        case 't': target = optarg; break;
        case 'c': o->clients = atoi(optarg); break;
        case 'n': o->ops = atol(optarg); break;
        case 'k': o->keys = atoi(optarg); break;
        case 'v': o->value_size = atoi(optarg); break;
        case 'r': o->read_ratio = atof(optarg); break;
        case 'd': o->duration_s = atof(optarg); break;
        case 'D': o->depth = atoi(optarg); break;
        case 'q': o->quorum = atoi(optarg); break;
        case 'w': o->wait_timeout_ms = atoi(optarg); break;
        case 'l': snprintf(o->label, sizeof o->label, "%s", optarg); break;
        case 'p':
            snprintf(o->key_prefix, sizeof o->key_prefix, "%s", optarg);
            break;
        case 'S': o->sequential = true; break;
        case 'U': o->untagged = true; break;
        case 'K': secret_file = optarg; break;
        case 's': server = optarg; break;
        case 'T': token = optarg; break;
        case 'L': o->tls = true; break;
        case 'h': s_usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind != argc || o->clients < 1 || o->clients > 4096 || o->ops < 1 ||
        o->keys < 1 || o->value_size < 0 || o->value_size > (1 << 20) ||
        o->read_ratio < 0 || o->read_ratio > 1 || o->depth < 1 ||
        o->depth > 65536 || o->quorum < 0)
        return -1;
    /* each security option belongs to one protocol */
    if ((o->mode != M_ZMQ && (secret_file || server)) ||
        (!secret_file != !server) || (o->mode != M_HTTP && token) ||
        (o->mode == M_ZMQ && o->tls))
        return -1;
    if (token) {
        if (!*token || strpbrk(token, " \t\r\n") ||
            strlen(token) > sizeof o->auth - 32)
            return -1;
        snprintf(o->auth, sizeof o->auth, "Authorization: Bearer %s\r\n",
                 token);
    }
    if (secret_file) {
        char err[512];
        int rc = qkv_key_read(secret_file, true, o->curve_secret, err,
                              sizeof err);
        if (rc == 0 && qkv_key_text(server))
            memcpy(o->curve_server, server, QKV_KEY_TEXT + 1);
        else if (rc == 0)
            rc = qkv_key_read(server, false, o->curve_server, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "qkv-bench: %s\n", err);
            return -1;
        }
        if (zmq_curve_public(o->curve_public, o->curve_secret) != 0) {
            fprintf(stderr, "qkv-bench: %s: not a CURVE secret key\n",
                    secret_file);
            return -1;
        }
        o->curve = true;
    }
    if (o->mode == M_ZMQ) {
        snprintf(o->endpoint, sizeof o->endpoint, "%s",
                 target ? target : "tcp://127.0.0.1:7000");
        return 0;
    }
    const char *t = target ? target
                           : o->mode == M_REDIS ? "127.0.0.1:6379"
                                                : "127.0.0.1:8000";
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || (size_t)(colon - t) >= sizeof o->host)
        return -1;
    memcpy(o->host, t, (size_t)(colon - t));
    o->host[colon - t] = '\0';
    o->port = atoi(colon + 1);
    return o->port > 0 && o->port < 65536 ? 0 : -1;
}

static const char *s_mode_name(s_mode_t m) {
    return m == M_HTTP ? "http" : m == M_ZMQ ? "zmq" : "redis";
}

int main(int argc, char **argv) {
    s_opts_t o;
    if (s_parse(&o, argc, argv) != 0) {
        s_usage(stderr);
        return 2;
    }
    if (o.tls) {
        signal(SIGPIPE, SIG_IGN); /* SSL_write on a closed connection */
        if (!(s_tls = SSL_CTX_new(TLS_client_method())) ||
            SSL_CTX_set_min_proto_version(s_tls, TLS1_2_VERSION) != 1) {
            fprintf(stderr, "qkv-bench: cannot make a TLS context\n");
            return 2;
        }
        SSL_CTX_set_verify(s_tls, SSL_VERIFY_NONE, NULL);
    }
    s_ctx = zmq_ctx_new();
    s_client_t *clients = calloc((size_t)o.clients, sizeof *clients);
    pthread_t *threads = calloc((size_t)o.clients, sizeof *threads);
    char *value = malloc((size_t)o.value_size + 1);
    memset(value, 'v', (size_t)o.value_size);
    value[o.value_size] = '\0';
    for (int i = 0; i < o.clients; i++) {
        s_client_t *c = &clients[i];
        c->o = &o;
        c->id = i;
        c->quota = o.ops / o.clients + (i < o.ops % o.clients);
        c->lat_ms = malloc((size_t)(c->quota ? c->quota : 1) * sizeof(double));
        c->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1) ^ (uint64_t)time(0);
        c->value = value;
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    clock_gettime(CLOCK_MONOTONIC, &s_start);
    double t0 = s_now_ms();
    for (int i = 0; i < o.clients; i++)
        pthread_create(&threads[i], NULL, s_client_main, &clients[i]);
    for (int i = 0; i < o.clients; i++)
        pthread_join(threads[i], NULL);
    double elapsed_s = (s_now_ms() - t0) / 1e3;
    getrusage(RUSAGE_SELF, &ru1);

    long ok = 0, failed[F_COUNT] = {0}, nfailed = 0;
    for (int i = 0; i < o.clients; i++) {
        ok += clients[i].ok;
        for (int f = 0; f < F_COUNT; f++) {
            failed[f] += clients[i].failed[f];
            nfailed += clients[i].failed[f];
        }
    }
    double *all = malloc((size_t)(ok ? ok : 1) * sizeof(double));
    long at = 0;
    double sum = 0;
    for (int i = 0; i < o.clients; i++)
        for (long j = 0; j < clients[i].ok; j++) {
            all[at++] = clients[i].lat_ms[j];
            sum += clients[i].lat_ms[j];
        }
    qsort(all, (size_t)ok, sizeof(double), s_cmp);
    double user = s_tv(ru1.ru_utime) - s_tv(ru0.ru_utime);
    double sys = s_tv(ru1.ru_stime) - s_tv(ru0.ru_stime);

    printf("{\"mode\":\"%s\",\"label\":\"%s\",\"clients\":%d,\"ops\":%ld,"
           "\"keys\":%d,\"value_size\":%d,\"read_ratio\":%.3f,\"depth\":%d,"
           "\"quorum\":%d,\"tls\":%s,\"curve\":%s,\"ok\":%ld,\"failed\":%ld,"
           "\"failed_by\":{",
           s_mode_name(o.mode), o.label, o.clients, o.ops, o.keys,
           o.value_size, o.read_ratio, o.depth, o.quorum,
           o.tls ? "true" : "false", o.curve ? "true" : "false", ok, nfailed);
    bool first = true;
    for (int f = 0; f < F_COUNT; f++)
        if (failed[f]) {
            printf("%s\"%s\":%ld", first ? "" : ",", s_fail_names[f],
                   failed[f]);
            first = false;
        }
    printf("},\"duration_s\":%.3f,\"throughput\":%.1f,\"avg_ms\":%.4f,"
           "\"min_ms\":%.4f,\"p50_ms\":%.4f,\"p95_ms\":%.4f,\"p99_ms\":%.4f,"
           "\"p999_ms\":%.4f,\"max_ms\":%.4f,\"bench_cpu_s\":%.3f,"
           "\"bench_cpu_pct\":%.1f}\n",
           elapsed_s, elapsed_s > 0 ? (double)ok / elapsed_s : 0,
           ok ? sum / (double)ok : 0, ok ? all[0] : 0, s_pct(all, ok, 50),
           s_pct(all, ok, 95), s_pct(all, ok, 99), s_pct(all, ok, 99.9),
           ok ? all[ok - 1] : 0, user + sys,
           elapsed_s > 0 ? (user + sys) / elapsed_s * 100 : 0);
    for (int i = 0; i < o.clients; i++)
        free(clients[i].lat_ms);
    free(all);
    free(clients);
    free(threads);
    free(value);
    zmq_ctx_term(s_ctx);
    if (s_tls)
        SSL_CTX_free(s_tls);
    return ok > 0 ? 0 : 1;
}
