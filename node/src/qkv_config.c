/*  qkv_config.c - settings from the environment and flags.

    Each setting has an environment variable and a flag; a flag wins over
    the variable. Raw strings are gathered first, then every one is checked
    and converted, so a bad value stops the node with a message naming the
    setting before anything starts.
*/
#include "qkv_config.h"
#include "qkv_hash.h"
#include "qkv_key.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Every setting, in the order --help lists them. */
typedef enum {
    S_ROLE,
    S_NODE_ID,
    S_PORT,
    S_BIND,
    S_REPL_PORT,
    S_FOLLOWERS,
    S_WRITE_QUORUM,
    S_MIN_DELAY_MS,
    S_MAX_DELAY_MS,
    S_MIN_DELAY,
    S_MAX_DELAY,
    S_REPLICATION_TIMEOUT_MS,
    S_HEARTBEAT_MS,
    S_LEADER_URL,
    S_HTTP_THREADS,
    S_MAX_KEY_BYTES,
    S_MAX_VALUE_BYTES,
    S_CLIENT_PORT,
    S_LEADER_ENDPOINT,
    S_CLIENT_ADVERTISE,
    S_DEDUP_WINDOW,
    S_SESSION_TTL_S,
    S_DATA_DIR,
    S_FSYNC,
    S_SNAPSHOT_ENTRIES,
    S_SNAPSHOT_LOG_BYTES,
    S_WAL_SEGMENT_BYTES,
    S_SYNCING_READS,
    S_REPAIR_LOG,
    S_DROP_FOREIGN_DATA,
    S_PEERS,
    S_ELECTION_TIMEOUT_MS,
    S_CURVE,
    S_CURVE_KEY_DIR,
    S_CLIENT_KEYS,
    S_HTTP_TOKENS_FILE,
    S_TLS_CERT_FILE,
    S_TLS_KEY_FILE,
    S_MAX_MEMORY,
    S_MAX_BODY_BYTES,
    S_MAX_PENDING_WRITES,
    S_REQUEST_TIMEOUT_MS,
    S_COMMIT_NOTIFY_MS,
    S_CPU_LIST,
    S_COUNT
} s_setting_t;

typedef struct {
    const char *var;  /* environment variable */
    const char *flag; /* long flag without the dashes */
    const char *dflt; /* default as --help shows it */
    const char *help; /* one line */
} s_spec_t;

static const s_spec_t s_specs[S_COUNT] = {
    {"ROLE", "role", "leader", "leader or follower"},
    {"NODE_ID", "node-id", "ROLE-PORT", "name in logs, /health, follower_id"},
    {"PORT", "port", "8000", "HTTP port"},
    {"BIND", "bind", "127.0.0.1", "IPv4 address of every listener"},
    {"REPL_PORT", "repl-port", "9000", "follower: replication port"},
    {"FOLLOWERS", "followers", "(none)",
     "leader: comma-separated tcp://HOST:PORT"},
    {"WRITE_QUORUM", "write-quorum", "1, or 0 without followers",
     "follower acks needed to commit (0..followers)"},
    {"MIN_DELAY_MS", "min-delay-ms", "0", "simulated link delay, low bound"},
    {"MAX_DELAY_MS", "max-delay-ms", "0", "simulated link delay, high bound"},
    {"MIN_DELAY", "min-delay", "-", "MIN_DELAY_MS in seconds (decimals)"},
    {"MAX_DELAY", "max-delay", "-", "MAX_DELAY_MS in seconds (decimals)"},
    {"REPLICATION_TIMEOUT_MS", "replication-timeout-ms", "5000",
     "write deadline"},
    {"HEARTBEAT_MS", "heartbeat-ms", "100", "heartbeat period"},
    {"LEADER_URL", "leader-url", "(none)", "follower: where 307s point"},
    {"HTTP_THREADS", "http-threads", "64", "HTTP worker threads"},
    {"MAX_KEY_BYTES", "max-key-bytes", "4096", "larger key: 413"},
    {"MAX_VALUE_BYTES", "max-value-bytes", "1048576", "larger value: 413"},
    {"CLIENT_PORT", "client-port", "7000", "zmq-native client port"},
    {"LEADER_ENDPOINT", "leader-endpoint", "(none)",
     "follower: leader's tcp://HOST:PORT client endpoint for not_leader"},
    {"CLIENT_ADVERTISE", "client-advertise", "tcp://BIND:CLIENT_PORT",
     "leader: client endpoint followers hand out (none if BIND 0.0.0.0)"},
    {"DEDUP_WINDOW", "dedup-window", "100000",
     "tagged writes (client_id, client_seq) every node remembers"},
    {"SESSION_TTL_S", "session-ttl-s", "86400",
     "a client session with no write for this long (log time) is dropped"},
    {"DATA_DIR", "data-dir", "./qkv-data/NODE_ID",
     "where the log and snapshots live; none: memory only"},
    {"FSYNC", "fsync", "always",
     "always, everysec or never; the same on every node"},
    {"SNAPSHOT_ENTRIES", "snapshot-entries", "100000",
     "entries logged between snapshots (each node +-10%)"},
    {"SNAPSHOT_LOG_BYTES", "snapshot-log-bytes", "268435456",
     "log bytes between snapshots (each node +-10%)"},
    {"WAL_SEGMENT_BYTES", "wal-segment-bytes", "67108864",
     "a new log file after this many bytes"},
    {"SYNCING_READS", "syncing-reads", "serve",
     "serve or refuse: reads on a follower catching up"},
    {"REPAIR_LOG", "repair-log", "0",
     "1: cut the log at a corrupt record instead of refusing to start"},
    {"DROP_FOREIGN_DATA", "drop-foreign-data", "0",
     "1: a follower holding another cluster's data drops it and joins"},
    {"PEERS", "peers", "(none: static roles)",
     "every node: ID=tcp://REPL|tcp://CLIENT|http://HTTP[|K=V...],..."},
    {"ELECTION_TIMEOUT_MS", "election-timeout-ms", "500",
     "with PEERS: no leader heard for [T, 2T): an election"},
    {"CURVE", "curve", "off",
     "on: CURVE on every ZeroMQ link (needs PEERS with |key=)"},
    {"CURVE_KEY_DIR", "curve-key-dir", "./qkv-keys",
     "CURVE: where NODE_ID.key (this node's secret key) lives"},
    {"CLIENT_KEYS", "client-keys", "any",
     "CURVE: any client key, or a file of 'read|write KEY' lines"},
    {"HTTP_TOKENS_FILE", "http-tokens-file", "(none: REST open)",
     "file of 'read|write TOKEN' lines: REST needs a bearer token"},
    {"TLS_CERT_FILE", "tls-cert-file", "(none: plain HTTP)",
     "PEM certificate chain: REST over TLS (https)"},
    {"TLS_KEY_FILE", "tls-key-file", "TLS_CERT_FILE",
     "PEM private key of the certificate"},
    {"MAX_MEMORY", "max-memory", "0 (no limit)",
     "bytes (K, M, G suffixes) for keys, values, sessions, log tail: 507"},
    {"MAX_BODY_BYTES", "max-body-bytes",
     "6 x (MAX_KEY_BYTES + MAX_VALUE_BYTES) + 4096", "larger REST body: 413"},
    {"MAX_PENDING_WRITES", "max-pending-writes", "10000",
     "writes in flight on the leader; more: overloaded (503)"},
    {"REQUEST_TIMEOUT_MS", "request-timeout-ms", "10000",
     "REST: headers and body must arrive within this; idle keep-alive too"},
    {"COMMIT_NOTIFY_MS", "commit-notify-ms", "1",
     "a commit reaches followers no APPEND told within this (0: at once)"},
    {"CPU_LIST", "cpu-list", "(none: any CPU)",
     "CPUs the node's threads run on, e.g. 0 or 0-1 or 0,2-3"},
};

#define S_MAX_DELAY_US (3600LL * 1000000) /* one hour */

void qkv_config_usage(FILE *out) {
    fprintf(out, "usage: qkv-node [--flag value | --flag=value]...\n"
                 "Every setting is an environment variable or a flag; "
                 "flags win.\n\n");
    for (int i = 0; i < S_COUNT; i++)
        fprintf(out, "  --%-24s %-24s %s (default: %s)\n", s_specs[i].flag,
                s_specs[i].var, s_specs[i].help, s_specs[i].dflt);
    fprintf(out, "  --%-24s %-24s %s\n", "help", "", "this text");
}

void qkv_config_clear(qkv_config_t *cfg) {
    for (size_t i = 0; i < cfg->follower_count; i++)
        free(cfg->followers[i]);
    free(cfg->peers);
    memset(cfg, 0, sizeof(*cfg));
}

/*  =====================================================================
    Checking one value */

static int s_fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *err, size_t err_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return -1;
}

/* Parses a whole decimal integer in [lo, hi]. */
static bool s_int(const char *s, long long lo, long long hi, long long *out) {
    if (!s || !*s || isspace((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Parses non-negative decimal seconds (digits, optional fraction of up to
   six places) into microseconds, at most S_MAX_DELAY_US. */
static bool s_seconds(const char *s, int64_t *us) {
    int64_t whole = 0, frac = 0;
    int places = 0;
    const char *p = s;
    if (!isdigit((unsigned char)*p) && *p != '.')
        return false;
    for (; isdigit((unsigned char)*p); p++) {
        whole = whole * 10 + (*p - '0');
        if (whole > S_MAX_DELAY_US / 1000000)
            return false;
    }
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++) {
            if (++places > 6)
                return false;
            frac = frac * 10 + (*p - '0');
        }
        if (places == 0 && p - s == 1)
            return false; /* a lone "." */
    }
    if (*p)
        return false;
    while (places++ < 6)
        frac *= 10;
    *us = whole * 1000000 + frac;
    return *us <= S_MAX_DELAY_US;
}

static bool s_host_char(char c) {
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

/* Checks tcp://HOST:PORT. */
static bool s_endpoint(const char *s) {
    if (strncmp(s, "tcp://", 6) != 0)
        return false;
    const char *host = s + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host || colon - host > 253)
        return false;
    for (const char *p = host; p < colon; p++)
        if (!s_host_char(*p))
            return false;
    long long port;
    return s_int(colon + 1, 1, 65535, &port);
}

static int s_followers(qkv_config_t *cfg, const char *raw, char *err,
                       size_t err_size) {
    const char *p = raw;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[300];
        if (len == 0 || len >= sizeof(item))
            return s_fail(err, err_size,
                          "FOLLOWERS: empty or too long entry in '%s'", raw);
        memcpy(item, p, len);
        item[len] = '\0';
        if (!s_endpoint(item))
            return s_fail(err, err_size,
                          "FOLLOWERS: '%s' is not tcp://HOST:PORT", item);
        if (cfg->follower_count == QKV_MAX_FOLLOWERS)
            return s_fail(err, err_size, "FOLLOWERS: more than %d followers",
                          QKV_MAX_FOLLOWERS);
        for (size_t i = 0; i < cfg->follower_count; i++)
            if (strcmp(cfg->followers[i], item) == 0)
                return s_fail(err, err_size, "FOLLOWERS: '%s' listed twice",
                              item);
        cfg->followers[cfg->follower_count] = strdup(item);
        if (!cfg->followers[cfg->follower_count])
            return s_fail(err, err_size, "FOLLOWERS: out of memory");
        cfg->follower_count++;
        p += len;
        if (*p == ',' && *++p == '\0')
            return s_fail(err, err_size, "FOLLOWERS: trailing comma");
    }
    return 0;
}

/* The port of a tcp://HOST:PORT endpoint or an http(s)://HOST[:PORT][/]
   URL. */
static int s_port_of(const char *s) {
    const char *host = strstr(s, "://");
    host = host ? host + 3 : s;
    const char *end = host + strcspn(host, "/");
    const char *colon = memchr(host, ':', (size_t)(end - host));
    if (!colon)
        return strncmp(s, "https", 5) == 0 ? 443 : 80;
    return atoi(colon + 1);
}

static bool s_http_url(const char *s) {
    const char *host = !strncmp(s, "http://", 7)    ? s + 7
                       : !strncmp(s, "https://", 8) ? s + 8
                                                    : NULL;
    if (!host || !*host)
        return false;
    const char *end = host + strcspn(host, "/");
    if (*end && strcmp(end, "/") != 0)
        return false; /* a base URL: no path */
    const char *colon = memchr(host, ':', (size_t)(end - host));
    for (const char *p = host; p < (colon ? colon : end); p++)
        if (!s_host_char(*p))
            return false;
    if (!colon)
        return colon != host;
    char port[8];
    size_t n = (size_t)(end - colon - 1);
    if (n == 0 || n >= sizeof(port))
        return false;
    memcpy(port, colon + 1, n);
    port[n] = '\0';
    long long v;
    return s_int(port, 1, 65535, &v);
}

/* Copies field k (0-based, '|'-separated) of item into out; returns false
   when it is missing or too long. *rest points after field 3, if any. */
static bool s_field(const char *item, int k, char *out, size_t size) {
    const char *p = item;
    for (int i = 0; i < k; i++) {
        p = strchr(p, '|');
        if (!p)
            return false;
        p++;
    }
    size_t len = strcspn(p, "|");
    if (len >= size)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* The key= option of a PEERS entry, if any: a CURVE public key. */
static int s_peer_key(qkv_peer_t *peer, char *err, size_t es) {
    for (const char *o = peer->options; *o;) {
        size_t n = strcspn(o, "|");
        if (n > 4 && !strncmp(o, "key=", 4)) {
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)(n - 4 < 63 ? n - 4 : 63),
                     o + 4);
            if (!qkv_key_text(key))
                return s_fail(err, es,
                              "PEERS: node %s: key= must be a CURVE public "
                              "key, 40 Z85 characters (qkv keygen makes one)",
                              peer->id);
            strcpy(peer->key, key);
        }
        o += n;
        if (*o == '|')
            o++;
    }
    return 0;
}

/* PEERS: ID=REPL|CLIENT|HTTP[|KEY=VALUE...], comma-separated. */
static int s_peers(qkv_config_t *cfg, const char *raw, char *err, size_t es) {
    cfg->peers = calloc(QKV_MAX_NODES, sizeof(*cfg->peers));
    if (!cfg->peers)
        return s_fail(err, es, "PEERS: out of memory");
    const char *p = raw;
    while (*p) {
        size_t len = strcspn(p, ",");
        char item[2400];
        if (len == 0 || len >= sizeof(item))
            return s_fail(err, es, "PEERS: empty or too long entry in '%.200s'",
                          raw);
        memcpy(item, p, len);
        item[len] = '\0';
        if (cfg->peer_count == QKV_MAX_NODES)
            return s_fail(err, es, "PEERS: more than %d nodes", QKV_MAX_NODES);
        qkv_peer_t *peer = &cfg->peers[cfg->peer_count];
        char *eq = strchr(item, '=');
        size_t id_len = eq ? (size_t)(eq - item) : 0;
        if (!eq || id_len == 0 || id_len >= sizeof(peer->id) ||
            memchr(item, '|', id_len))
            return s_fail(err, es,
                          "PEERS: '%.200s' does not start with ID= (an ID of "
                          "1 to 127 bytes)",
                          item);
        memcpy(peer->id, item, id_len);
        peer->id[id_len] = '\0';
        const char *fields = eq + 1;
        if (!s_field(fields, 0, peer->repl, sizeof(peer->repl)) ||
            !s_field(fields, 1, peer->client, sizeof(peer->client)) ||
            !s_field(fields, 2, peer->http, sizeof(peer->http)))
            return s_fail(err, es,
                          "PEERS: '%.200s' is not ID=REPL_ENDPOINT|"
                          "CLIENT_ENDPOINT|HTTP_URL",
                          item);
        if (!s_endpoint(peer->repl) || !s_endpoint(peer->client))
            return s_fail(err, es,
                          "PEERS: node %s: its endpoints must be "
                          "tcp://HOST:PORT",
                          peer->id);
        if (!s_http_url(peer->http))
            return s_fail(err, es,
                          "PEERS: node %s: '%.200s' is not an http:// or "
                          "https:// URL of a host and port",
                          peer->id, peer->http);
        size_t l = strlen(peer->http);
        if (peer->http[l - 1] == '/')
            peer->http[l - 1] = '\0';
        const char *opts = fields;
        for (int i = 0; i < 3 && opts; i++) {
            opts = strchr(opts, '|');
            opts = opts ? opts + 1 : NULL;
        }
        if (opts) {
            if (strlen(opts) >= sizeof(peer->options))
                return s_fail(err, es, "PEERS: node %s: options too long",
                              peer->id);
            for (const char *o = opts; *o;) {
                size_t n = strcspn(o, "|");
                const char *oeq = memchr(o, '=', n);
                if (!oeq || oeq == o)
                    return s_fail(err, es,
                                  "PEERS: node %s: '%.*s' is not KEY=VALUE",
                                  peer->id, (int)(n > 200 ? 200 : n), o);
                o += n;
                if (*o == '|')
                    o++;
            }
            strcpy(peer->options, opts);
            if (s_peer_key(peer, err, es))
                return -1;
        }
        for (size_t i = 0; i < cfg->peer_count; i++) {
            const qkv_peer_t *q = &cfg->peers[i];
            if (!strcmp(q->id, peer->id))
                return s_fail(err, es, "PEERS: node %s listed twice", peer->id);
            if (!strcmp(q->repl, peer->repl) ||
                !strcmp(q->client, peer->client) ||
                !strcmp(q->http, peer->http))
                return s_fail(err, es,
                              "PEERS: nodes %s and %s share an endpoint", q->id,
                              peer->id);
        }
        cfg->peer_count++;
        p += len;
        if (*p == ',' && *++p == '\0')
            return s_fail(err, es, "PEERS: trailing comma");
    }
    if (cfg->peer_count == 0)
        return s_fail(err, es, "PEERS: no node listed");
    return 0;
}

const qkv_peer_t *qkv_config_peer(const qkv_config_t *cfg, size_t slot) {
    return &cfg->peers[slot < cfg->self ? slot : slot + 1];
}

/*  =====================================================================
    Gathering raw strings */

typedef struct {
    const char *env[S_COUNT];  /* from the environment */
    const char *flag[S_COUNT]; /* from argv */
} s_raw_t;

static const char *s_value(const s_raw_t *raw, s_setting_t s) {
    return raw->flag[s] ? raw->flag[s] : raw->env[s];
}

static int s_gather(s_raw_t *raw, int argc, char *const *argv,
                    qkv_getenv_fn *getenv_fn, char *err, size_t err_size) {
    for (int s = 0; s < S_COUNT; s++) {
        const char *v = getenv_fn ? getenv_fn(s_specs[s].var) : NULL;
        raw->env[s] = v && *v ? v : NULL; /* empty = unset */
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "--", 2) != 0)
            return s_fail(err, err_size, "unexpected argument '%s'", arg);
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int s;
        for (s = 0; s < S_COUNT; s++)
            if (strlen(s_specs[s].flag) == len &&
                strncmp(s_specs[s].flag, name, len) == 0)
                break;
        if (s == S_COUNT)
            return s_fail(err, err_size, "unknown flag '%s' (see --help)", arg);
        if (eq)
            raw->flag[s] = eq + 1;
        else if (i + 1 < argc)
            raw->flag[s] = argv[++i];
        else
            return s_fail(err, err_size, "%s (--%s): missing value",
                          s_specs[s].var, s_specs[s].flag);
    }
    return 0;
}

/*  =====================================================================
    Converting */

static int s_int_setting(const s_raw_t *raw, s_setting_t s, long long lo,
                         long long hi, long long dflt, long long *out,
                         char *err, size_t err_size) {
    const char *v = s_value(raw, s);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!s_int(v, lo, hi, out))
        return s_fail(err, err_size,
                      "%s (--%s): '%s' is not a whole number in %lld..%lld",
                      s_specs[s].var, s_specs[s].flag, v, lo, hi);
    return 0;
}

/* One delay bound: the _MS form or the seconds form, never both from the
   same source; a flag of either form overrides the environment. */
static int s_delay(const s_raw_t *raw, s_setting_t ms, s_setting_t secs,
                   int64_t *us, char *err, size_t err_size) {
    const char *const *src = raw->flag;
    if (!raw->flag[ms] && !raw->flag[secs])
        src = raw->env;
    if (src[ms] && src[secs])
        return s_fail(err, err_size, "%s and %s both given: use one",
                      s_specs[ms].var, s_specs[secs].var);
    *us = 0;
    if (src[ms]) {
        long long v;
        if (!s_int(src[ms], 0, S_MAX_DELAY_US / 1000, &v))
            return s_fail(err, err_size,
                          "%s (--%s): '%s' is not a whole number of "
                          "milliseconds in 0..%lld",
                          s_specs[ms].var, s_specs[ms].flag, src[ms],
                          S_MAX_DELAY_US / 1000);
        *us = v * 1000;
    } else if (src[secs] && !s_seconds(src[secs], us)) {
        return s_fail(err, err_size,
                      "%s (--%s): '%s' is not a number of seconds in "
                      "0..3600 (at most 6 decimals)",
                      s_specs[secs].var, s_specs[secs].flag, src[secs]);
    }
    return 0;
}

static int s_text(const char *v, const char *var, char *out, size_t size,
                  char *err, size_t err_size) {
    if (!*v)
        return s_fail(err, err_size, "%s: empty", var);
    if (strlen(v) >= size)
        return s_fail(err, err_size, "%s: longer than %zu bytes", var,
                      size - 1);
    for (const char *p = v; *p; p++)
        if (!isgraph((unsigned char)*p))
            return s_fail(err, err_size,
                          "%s: '%s' has a space or control character", var, v);
    strcpy(out, v);
    return 0;
}

static int s_endpoint_setting(const s_raw_t *raw, s_setting_t s, char *out,
                              size_t size, char *err, size_t es) {
    const char *v = s_value(raw, s);
    if (!v)
        return 0;
    if (!s_endpoint(v) || strlen(v) >= size)
        return s_fail(err, es, "%s (--%s): '%s' is not tcp://HOST:PORT",
                      s_specs[s].var, s_specs[s].flag, v);
    strcpy(out, v);
    return 0;
}

/* 0 or 1 (also no/yes, false/true). */
static int s_bool_setting(const s_raw_t *raw, s_setting_t s, bool *out,
                          char *err, size_t es) {
    const char *v = s_value(raw, s);
    if (!v)
        return 0;
    if (!strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true"))
        *out = true;
    else if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false"))
        *out = false;
    else
        return s_fail(err, es, "%s (--%s): '%s' is not 0 or 1", s_specs[s].var,
                      s_specs[s].flag, v);
    return 0;
}

/* DATA_DIR, FSYNC, snapshots and the rest of durability. */
static int s_durability(qkv_config_t *cfg, const s_raw_t *raw, char *err,
                        size_t es) {
    const char *v = s_value(raw, S_DATA_DIR);
    if (!v)
        snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./qkv-data/%s",
                 cfg->node_id);
    else if (strcmp(v, "none") != 0 &&
             s_text(v, "DATA_DIR (--data-dir)", cfg->data_dir,
                    sizeof(cfg->data_dir), err, es))
        return -1;
    v = s_value(raw, S_FSYNC);
    if (!v || !strcmp(v, "always"))
        cfg->fsync = 0;
    else if (!strcmp(v, "everysec"))
        cfg->fsync = 1;
    else if (!strcmp(v, "never"))
        cfg->fsync = 2;
    else
        return s_fail(err, es,
                      "FSYNC (--fsync): '%s' is not always, everysec or never",
                      v);
    long long n;
    if (s_int_setting(raw, S_SNAPSHOT_ENTRIES, 100, 1000000000, 100000, &n, err,
                      es))
        return -1;
    cfg->snapshot_entries = (uint64_t)n;
    if (s_int_setting(raw, S_SNAPSHOT_LOG_BYTES, 1 << 20, 1LL << 40, 256 << 20,
                      &n, err, es))
        return -1;
    cfg->snapshot_log_bytes = (uint64_t)n;
    if (s_int_setting(raw, S_WAL_SEGMENT_BYTES, 1 << 16, 1LL << 32, 64 << 20,
                      &n, err, es))
        return -1;
    cfg->wal_segment_bytes = (uint64_t)n;
    v = s_value(raw, S_SYNCING_READS);
    cfg->syncing_reads = true;
    if (v && !strcmp(v, "refuse"))
        cfg->syncing_reads = false;
    else if (v && strcmp(v, "serve") != 0)
        return s_fail(err, es,
                      "SYNCING_READS (--syncing-reads): '%s' is not serve or "
                      "refuse",
                      v);
    return s_bool_setting(raw, S_REPAIR_LOG, &cfg->repair_log, err, es) ||
                   s_bool_setting(raw, S_DROP_FOREIGN_DATA,
                                  &cfg->drop_foreign_data, err, es)
               ? -1
               : 0;
}

/* A path setting: "" when unset (or "none" where none_ok). */
static int s_path_setting(const s_raw_t *raw, s_setting_t s, char *out,
                          size_t size, char *err, size_t es) {
    const char *v = s_value(raw, s);
    out[0] = '\0';
    if (!v)
        return 0;
    char name[96];
    snprintf(name, sizeof(name), "%s (--%s)", s_specs[s].var, s_specs[s].flag);
    return s_text(v, name, out, size, err, es);
}

/* A byte count: digits with an optional K, M or G (powers of 1024). */
static bool s_bytes(const char *v, uint64_t *out) {
    size_t n = strlen(v);
    if (n == 0 || n > 24)
        return false;
    char digits[32];
    memcpy(digits, v, n + 1);
    uint64_t unit = 1;
    char last = (char)toupper((unsigned char)digits[n - 1]);
    if (last == 'K' || last == 'M' || last == 'G') {
        unit = last == 'K' ? 1ULL << 10 : last == 'M' ? 1ULL << 20 : 1ULL << 30;
        digits[n - 1] = '\0';
    }
    long long x;
    if (!s_int(digits, 0, (1LL << 50) / (long long)unit, &x))
        return false;
    *out = (uint64_t)x * unit;
    return true;
}

/* CPU_LIST: comma-separated CPU numbers and ranges (0, 0-1, 0,2-3). */
static int s_cpu_list(qkv_config_t *cfg, const char *v, char *err, size_t es) {
    CPU_ZERO(&cfg->cpu_set);
    cfg->cpu_count = 0;
    const char *p = v;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9')
            break;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        p = end;
        if (*p == '-') {
            if (p[1] < '0' || p[1] > '9')
                break;
            hi = strtoul(p + 1, &end, 10);
            p = end;
        }
        if (hi < lo || hi >= CPU_SETSIZE)
            return s_fail(err, es,
                          "CPU_LIST (--cpu-list): '%s': CPUs go from 0 to %d, "
                          "ranges low-high",
                          v, CPU_SETSIZE - 1);
        for (unsigned long c = lo; c <= hi; c++)
            if (!CPU_ISSET(c, &cfg->cpu_set)) {
                CPU_SET(c, &cfg->cpu_set);
                cfg->cpu_count++;
            }
        if (*p == '\0')
            return 0;
        if (*p != ',')
            break;
        p++;
    }
    return s_fail(err, es,
                  "CPU_LIST (--cpu-list): '%s' is not a list of CPUs such as "
                  "0 or 0-1 or 0,2-3",
                  v);
}

/* CURVE and the client keys, REST tokens and TLS, the limits, and the
   speed settings (COMMIT_NOTIFY_MS, CPU_LIST). */
static int s_security(qkv_config_t *cfg, const s_raw_t *raw, bool peers,
                      char *err, size_t es) {
    const char *v = s_value(raw, S_CURVE);
    if (v && !strcmp(v, "on"))
        cfg->curve = true;
    else if (v && strcmp(v, "off") != 0)
        return s_fail(err, es, "CURVE (--curve): '%s' is not on or off", v);
    if (cfg->curve && !peers)
        return s_fail(err, es,
                      "CURVE=on needs PEERS: every node's public key is "
                      "given there (|key=...)");
    for (size_t i = 0; cfg->curve && i < cfg->peer_count; i++)
        if (!cfg->peers[i].key[0])
            return s_fail(err, es,
                          "CURVE=on: PEERS entry %s has no |key=PUBLIC_KEY",
                          cfg->peers[i].id);
    v = s_value(raw, S_CURVE_KEY_DIR);
    if (s_path_setting(raw, S_CURVE_KEY_DIR, cfg->curve_key_dir,
                       sizeof(cfg->curve_key_dir), err, es))
        return -1;
    if (!v)
        strcpy(cfg->curve_key_dir, "./qkv-keys");
    v = s_value(raw, S_CLIENT_KEYS);
    if (v && !strcmp(v, "any"))
        v = NULL;
    if (v && s_path_setting(raw, S_CLIENT_KEYS, cfg->client_keys,
                            sizeof(cfg->client_keys), err, es))
        return -1;
    if (v && !cfg->curve)
        return s_fail(err, es,
                      "CLIENT_KEYS (--client-keys) lists CURVE keys: it "
                      "needs CURVE=on");
    if (s_path_setting(raw, S_HTTP_TOKENS_FILE, cfg->http_tokens_file,
                       sizeof(cfg->http_tokens_file), err, es) ||
        s_path_setting(raw, S_TLS_CERT_FILE, cfg->tls_cert_file,
                       sizeof(cfg->tls_cert_file), err, es) ||
        s_path_setting(raw, S_TLS_KEY_FILE, cfg->tls_key_file,
                       sizeof(cfg->tls_key_file), err, es))
        return -1;
    if (cfg->tls_key_file[0] && !cfg->tls_cert_file[0])
        return s_fail(err, es,
                      "TLS_KEY_FILE (--tls-key-file) without TLS_CERT_FILE "
                      "(--tls-cert-file)");
    v = s_value(raw, S_MAX_MEMORY);
    if (v && !s_bytes(v, &cfg->max_memory))
        return s_fail(err, es,
                      "MAX_MEMORY (--max-memory): '%s' is not a number of "
                      "bytes (K, M or G may follow; 0 = no limit)",
                      v);
    if (cfg->max_memory && cfg->max_memory < (16ULL << 20))
        return s_fail(err, es,
                      "MAX_MEMORY (--max-memory): %llu bytes is below the "
                      "16M a node needs to start",
                      (unsigned long long)cfg->max_memory);
    long long n;
    size_t pair = cfg->max_key_bytes + cfg->max_value_bytes;
    if (s_int_setting(raw, S_MAX_BODY_BYTES, 64, 1LL << 30,
                      6LL * (long long)pair + 4096, &n, err, es))
        return -1;
    cfg->max_body_bytes = (size_t)n;
    if (s_int_setting(raw, S_MAX_PENDING_WRITES, 1, 10000000, 10000, &n, err,
                      es))
        return -1;
    cfg->max_pending_writes = (int)n;
    if (s_int_setting(raw, S_REQUEST_TIMEOUT_MS, 100, 3600 * 1000, 10000, &n,
                      err, es))
        return -1;
    cfg->request_timeout_ms = (int)n;
    if (s_int_setting(raw, S_COMMIT_NOTIFY_MS, 0, 1000, 1, &n, err, es))
        return -1;
    cfg->commit_notify_ms = (int)n;
    v = s_value(raw, S_CPU_LIST);
    if (v && s_cpu_list(cfg, v, err, es))
        return -1;
    return 0;
}

/* PEERS and what comes with it: this node's entry (NODE_ID, which must
   be given), no setting that PEERS replaces, ROLE as a bootstrap wish. */
static int s_elections(qkv_config_t *cfg, const s_raw_t *raw,
                       const qkv_peer_t **me, char *err, size_t es) {
    if (s_peers(cfg, s_value(raw, S_PEERS), err, es))
        return -1;
    const char *id = s_value(raw, S_NODE_ID);
    if (!id)
        return s_fail(err, es,
                      "NODE_ID (--node-id) must name this node's entry in "
                      "PEERS");
    for (size_t i = 0; i < cfg->peer_count && !*me; i++)
        if (!strcmp(cfg->peers[i].id, id)) {
            cfg->self = i;
            *me = &cfg->peers[i];
        }
    if (!*me)
        return s_fail(err, es, "NODE_ID '%.127s' is not one of the PEERS", id);
    static const s_setting_t derived[] = {
        S_FOLLOWERS, S_LEADER_URL, S_LEADER_ENDPOINT, S_CLIENT_ADVERTISE};
    for (size_t i = 0; i < sizeof(derived) / sizeof(derived[0]); i++)
        if (s_value(raw, derived[i]))
            return s_fail(err, es,
                          "%s (--%s) comes from PEERS: leave it unset when "
                          "PEERS is set",
                          s_specs[derived[i]].var, s_specs[derived[i]].flag);
    cfg->campaign_at_start =
        s_value(raw, S_ROLE) && cfg->role == QKV_ROLE_LEADER;
    cfg->role = QKV_ROLE_FOLLOWER; /* until it wins an election */
    return 0;
}

/* What every node of a cluster must agree on: PEERS, WRITE_QUORUM and
   FSYNC. Not the keys (key=): a node whose key changes is cut off by
   CURVE until the others know its new key, but the others go on talking
   to each other while they restart one by one. */
static uint64_t s_cluster_hash(const qkv_config_t *cfg) {
    uint64_t h = qkv_hash_bytes(0x71766b, "peers", 5);
    for (size_t i = 0; i < cfg->peer_count; i++) {
        const qkv_peer_t *p = &cfg->peers[i];
        const char *parts[] = {p->id, p->repl, p->client, p->http};
        for (size_t k = 0; k < 4; k++)
            h = qkv_hash_bytes(h, parts[k], strlen(parts[k]) + 1);
        for (const char *o = p->options; *o;) {
            size_t n = strcspn(o, "|");
            if (strncmp(o, "key=", 4) != 0)
                h = qkv_hash_bytes(h, o, n + 1);
            o += n + (o[n] == '|');
        }
        h = qkv_hash_bytes(h, "", 1);
    }
    int32_t q = cfg->write_quorum, f = cfg->fsync;
    h = qkv_hash_bytes(h, &q, sizeof(q));
    return qkv_hash_bytes(h, &f, sizeof(f)) | 1;
}

static int s_convert(qkv_config_t *cfg, const s_raw_t *raw, char *err,
                     size_t es) {
    const char *v = s_value(raw, S_ROLE);
    if (!v || strcmp(v, "leader") == 0)
        cfg->role = QKV_ROLE_LEADER;
    else if (strcmp(v, "follower") == 0)
        cfg->role = QKV_ROLE_FOLLOWER;
    else
        return s_fail(err, es, "ROLE (--role): '%s' is not leader or follower",
                      v);
    const qkv_peer_t *me = NULL;
    if (s_value(raw, S_PEERS) && s_elections(cfg, raw, &me, err, es))
        return -1;

    long long n;
    if (s_int_setting(raw, S_PORT, 1, 65535, me ? s_port_of(me->http) : 8000,
                      &n, err, es))
        return -1;
    cfg->port = (int)n;
    if (s_int_setting(raw, S_REPL_PORT, 1, 65535,
                      me ? s_port_of(me->repl) : 9000, &n, err, es))
        return -1;
    cfg->repl_port = (int)n;
    if (s_int_setting(raw, S_REPLICATION_TIMEOUT_MS, 1, 3600 * 1000, 5000, &n,
                      err, es))
        return -1;
    cfg->replication_timeout_ms = (int)n;
    if (s_int_setting(raw, S_HEARTBEAT_MS, 1, 60 * 1000, 100, &n, err, es))
        return -1;
    cfg->heartbeat_ms = (int)n;
    if (s_int_setting(raw, S_HTTP_THREADS, 1, 1024, 64, &n, err, es))
        return -1;
    cfg->http_threads = (int)n;
    if (s_int_setting(raw, S_MAX_KEY_BYTES, 1, 1 << 20, 4096, &n, err, es))
        return -1;
    cfg->max_key_bytes = (size_t)n;
    if (s_int_setting(raw, S_MAX_VALUE_BYTES, 1, 64 << 20, 1 << 20, &n, err,
                      es))
        return -1;
    cfg->max_value_bytes = (size_t)n;

    if (s_int_setting(raw, S_CLIENT_PORT, 1, 65535,
                      me ? s_port_of(me->client) : 7000, &n, err, es))
        return -1;
    cfg->client_port = (int)n;
    if (s_int_setting(raw, S_DEDUP_WINDOW, 1, 10000000, 100000, &n, err, es))
        return -1;
    cfg->dedup_window = (size_t)n;
    if (s_int_setting(raw, S_SESSION_TTL_S, 1, 10LL * 365 * 86400, 86400, &n,
                      err, es))
        return -1;
    cfg->session_ttl_s = (uint64_t)n;

    v = s_value(raw, S_BIND);
    struct in_addr addr;
    if (v && inet_pton(AF_INET, v, &addr) != 1)
        return s_fail(err, es, "BIND (--bind): '%s' is not an IPv4 address", v);
    snprintf(cfg->bind, sizeof(cfg->bind), "%s", v ? v : "127.0.0.1");

    if (s_delay(raw, S_MIN_DELAY_MS, S_MIN_DELAY, &cfg->min_delay_us, err,
                es) ||
        s_delay(raw, S_MAX_DELAY_MS, S_MAX_DELAY, &cfg->max_delay_us, err, es))
        return -1;
    if (cfg->min_delay_us > cfg->max_delay_us)
        return s_fail(err, es,
                      "MIN_DELAY_MS (%lld ms) is above MAX_DELAY_MS (%lld ms)",
                      (long long)(cfg->min_delay_us / 1000),
                      (long long)(cfg->max_delay_us / 1000));
    if (s_int_setting(raw, S_ELECTION_TIMEOUT_MS, 1, 3600 * 1000, 500, &n, err,
                      es))
        return -1;
    cfg->election_timeout_ms = (int)n;
    long long floor_ms = 3LL * cfg->heartbeat_ms + cfg->max_delay_us / 1000;
    if (me && n < floor_ms)
        return s_fail(err, es,
                      "ELECTION_TIMEOUT_MS (--election-timeout-ms): %lld ms is "
                      "below 3 x HEARTBEAT_MS + MAX_DELAY_MS = %lld ms: "
                      "followers would campaign against a live leader",
                      n, floor_ms);

    v = s_value(raw, S_FOLLOWERS);
    if (v && s_followers(cfg, v, err, es))
        return -1;
    for (size_t i = 0; me && i < cfg->peer_count; i++) {
        if (i == cfg->self)
            continue;
        cfg->followers[cfg->follower_count] = strdup(cfg->peers[i].repl);
        if (!cfg->followers[cfg->follower_count])
            return s_fail(err, es, "PEERS: out of memory");
        cfg->follower_count++; /* the peer slots, in PEERS order */
    }
    if (cfg->role == QKV_ROLE_FOLLOWER && cfg->follower_count && !me)
        return s_fail(err, es,
                      "FOLLOWERS is a leader setting; this node's "
                      "ROLE is follower");
    long long dq = cfg->follower_count ? 1 : 0;
    if (s_int_setting(raw, S_WRITE_QUORUM, 0, QKV_MAX_FOLLOWERS, dq, &n, err,
                      es))
        return -1;
    cfg->write_quorum = (int)n;
    if ((cfg->role == QKV_ROLE_LEADER || me) &&
        (size_t)cfg->write_quorum > cfg->follower_count)
        return s_fail(err, es,
                      "WRITE_QUORUM (--write-quorum): %d is more than the %zu "
                      "%s",
                      cfg->write_quorum, cfg->follower_count,
                      me ? "other nodes in PEERS" : "configured followers");

    v = s_value(raw, S_LEADER_URL);
    if (v) {
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
            return s_fail(err, es,
                          "LEADER_URL (--leader-url): '%s' is not an http:// "
                          "or https:// URL",
                          v);
        if (s_text(v, "LEADER_URL (--leader-url)", cfg->leader_url,
                   sizeof(cfg->leader_url), err, es))
            return -1;
        size_t len = strlen(cfg->leader_url);
        while (len > 8 && cfg->leader_url[len - 1] == '/')
            cfg->leader_url[--len] = '\0';
    }

    if (s_endpoint_setting(raw, S_LEADER_ENDPOINT, cfg->leader_endpoint,
                           sizeof(cfg->leader_endpoint), err, es) ||
        s_endpoint_setting(raw, S_CLIENT_ADVERTISE, cfg->client_advertise,
                           sizeof(cfg->client_advertise), err, es))
        return -1;
    if (me)
        snprintf(cfg->client_advertise, sizeof(cfg->client_advertise), "%s",
                 me->client);
    else if (!s_value(raw, S_CLIENT_ADVERTISE) &&
             strcmp(cfg->bind, "0.0.0.0") != 0)
        snprintf(cfg->client_advertise, sizeof(cfg->client_advertise),
                 "tcp://%s:%d", cfg->bind, cfg->client_port);

    v = s_value(raw, S_NODE_ID);
    if (v && s_text(v, "NODE_ID (--node-id)", cfg->node_id,
                    sizeof(cfg->node_id), err, es))
        return -1;
    if (!v)
        snprintf(cfg->node_id, sizeof(cfg->node_id), "%s-%d",
                 cfg->role == QKV_ROLE_LEADER ? "leader" : "follower",
                 cfg->port);
    if (s_durability(cfg, raw, err, es) ||
        s_security(cfg, raw, me != NULL, err, es))
        return -1;
    if (me)
        cfg->cluster_hash = s_cluster_hash(cfg);
    return 0;
}

int qkv_config_parse(qkv_config_t *cfg, int argc, char *const *argv,
                     qkv_getenv_fn *getenv_fn, char *err, size_t err_size) {
    memset(cfg, 0, sizeof(*cfg));
    if (err_size)
        err[0] = '\0';
    s_raw_t raw;
    memset(&raw, 0, sizeof(raw));
    int rc = s_gather(&raw, argc, argv, getenv_fn, err, err_size);
    if (rc != 0)
        return rc;
    return s_convert(cfg, &raw, err, err_size);
}
