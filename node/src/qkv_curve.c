/*  qkv_curve.c - this node's CURVE keys and its ZAP handler
    (qkv_curve.h).

    The ZAP handler is a czmq actor with a REP socket bound on
    inproc://zeromq.zap.01 in czmq's context, which every socket of the
    node shares. It answers each request from tables filled before it
    starts and never changed after, so it needs no lock: members by
    public key (User-Id = NODE_ID) for the replication domain, client keys
    (User-Id read or write) for the client domain. Anything else - another
    mechanism, another domain, a malformed request - is refused.
*/
#include "qkv_curve.h"
#include "qkv_io.h"
#include "qkv_key.h"
#include "qkv_say.h"

#include <czmq.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t key[32];
    char id[128];
} s_member_t;

struct qkv_curve_t {
    char public_key[QKV_KEY_TEXT + 1];
    char secret_key[QKV_KEY_TEXT + 1];
    s_member_t members[QKV_MAX_NODES];
    size_t member_count;
    bool any_client;           /* CLIENT_KEYS=any */
    qkv_client_key_t *clients; /* CLIENT_KEYS, owned */
    size_t client_count;
    zactor_t *zap;
    _Atomic uint64_t denied_repl, denied_client;
};

/*  =====================================================================
    CLIENT_KEYS */

int qkv_client_keys_parse(const char *text, size_t len, qkv_client_key_t *keys,
                          size_t max, char *err, size_t err_size) {
    size_t count = 0, line_no = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        line_no++;
        char line[512];
        size_t n = (size_t)(stop - p);
        if (n >= sizeof(line)) {
            snprintf(err, err_size, "line %zu: longer than %zu bytes", line_no,
                     sizeof(line) - 1);
            return -1;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl ? nl + 1 : end;
        if (memchr(line, '\0', n)) {
            snprintf(err, err_size, "line %zu: a NUL byte", line_no);
            return -1;
        }
        char *s = line + strspn(line, " \t\r");
        if (!*s || *s == '#')
            continue;
        char kind[8], key[64];
        int used = 0;
        if (sscanf(s, "%7s %63s%n", kind, key, &used) != 2 ||
            (strcmp(kind, "read") != 0 && strcmp(kind, "write") != 0)) {
            snprintf(err, err_size,
                     "line %zu: not 'read KEY' or 'write KEY' (an optional "
                     "name may follow)",
                     line_no);
            return -1;
        }
        if (!qkv_key_text(key)) {
            snprintf(err, err_size,
                     "line %zu: the key is not %d Z85 characters (qkv "
                     "keygen writes one in NAME.pub)",
                     line_no, QKV_KEY_TEXT);
            return -1;
        }
        if (count == max) {
            snprintf(err, err_size, "line %zu: more than %zu keys", line_no,
                     max);
            return -1;
        }
        qkv_client_key_t *k = &keys[count];
        zmq_z85_decode(k->key, key);
        k->write = kind[0] == 'w';
        for (size_t i = 0; i < count; i++)
            if (!memcmp(keys[i].key, k->key, 32)) {
                snprintf(err, err_size, "line %zu: key listed twice", line_no);
                return -1;
            }
        count++;
    }
    return (int)count;
}

static int s_load_client_keys(qkv_curve_t *self, const char *path, char *err,
                              size_t es) {
    size_t n;
    char why[4400];
    char *text = qkv_read_file(path, QKV_CLIENT_KEYS_FILE_MAX, false, &n, why,
                               sizeof(why));
    if (!text) {
        snprintf(err, es, "CLIENT_KEYS: %s", why);
        return -1;
    }
    self->clients = calloc(QKV_CLIENT_KEYS_MAX, sizeof(*self->clients));
    snprintf(why, sizeof(why), "out of memory");
    int count = self->clients ? qkv_client_keys_parse(text, n, self->clients,
                                                      QKV_CLIENT_KEYS_MAX, why,
                                                      sizeof(why))
                              : -1;
    free(text);
    if (count < 0) {
        snprintf(err, es, "CLIENT_KEYS: %s: %s", path, why);
        return -1;
    }
    self->client_count = (size_t)count;
    return 0;
}

/*  =====================================================================
    The ZAP handler */

/* Who key is in domain: 200 with user id, or 400. */
static bool s_allow(qkv_curve_t *self, const char *domain, const uint8_t *key,
                    const char **user) {
    if (!strcmp(domain, QKV_CURVE_DOMAIN_REPL)) {
        for (size_t i = 0; i < self->member_count; i++)
            if (!memcmp(self->members[i].key, key, 32)) {
                *user = self->members[i].id;
                return true;
            }
        atomic_fetch_add(&self->denied_repl, 1);
        return false;
    }
    if (!strcmp(domain, QKV_CURVE_DOMAIN_CLIENT)) {
        if (self->any_client) {
            *user = QKV_CURVE_USER_WRITE;
            return true;
        }
        for (size_t i = 0; i < self->client_count; i++)
            if (!memcmp(self->clients[i].key, key, 32)) {
                *user = self->clients[i].write ? QKV_CURVE_USER_WRITE
                                               : QKV_CURVE_USER_READ;
                return true;
            }
        atomic_fetch_add(&self->denied_client, 1);
    }
    return false;
}

/* Answers one request: version, request id, domain, address, routing id,
   mechanism, credentials. */
static void s_zap_serve(qkv_curve_t *self, zsock_t *handler) {
    zmsg_t *req = zmsg_recv(handler);
    if (!req)
        return;
    zframe_t *f[7] = {NULL};
    for (int i = 0; i < 7; i++)
        f[i] = zmsg_pop(req);
    bool well_formed = f[6] && zmsg_size(req) == 0 && zframe_streq(f[0], "1.0");
    char domain[64] = "";
    if (well_formed && zframe_size(f[2]) < sizeof(domain))
        memcpy(domain, zframe_data(f[2]), zframe_size(f[2]));
    const char *user = "";
    bool allowed = well_formed && zframe_streq(f[5], "CURVE") &&
                   zframe_size(f[6]) == 32 &&
                   s_allow(self, domain, zframe_data(f[6]), &user);
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "1.0");
    if (f[1])
        zmsg_append(reply, &f[1]);
    else
        zmsg_addstr(reply, "");
    zmsg_addstr(reply, allowed ? "200" : "400");
    zmsg_addstr(reply, allowed ? "OK" : "key not allowed");
    zmsg_addstr(reply, user);
    zmsg_addmem(reply, NULL, 0);
    zmsg_send(&reply, handler);
    for (int i = 0; i < 7; i++)
        zframe_destroy(&f[i]);
    zmsg_destroy(&req);
}

static void s_zap_actor(zsock_t *pipe, void *args) {
    qkv_curve_t *self = args;
    zsock_t *handler = zsock_new(ZMQ_REP);
    if (!handler || zsock_bind(handler, "inproc://zeromq.zap.01") != 0) {
        zsock_destroy(&handler);
        zsock_signal(pipe, 1);
        return;
    }
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, handler, NULL);
    while (poller) {
        void *which = zpoller_wait(poller, -1);
        if (which == handler) {
            s_zap_serve(self, handler);
            continue;
        }
        if (which == pipe) {
            zmsg_t *m = zmsg_recv(pipe);
            char *cmd = m ? zmsg_popstr(m) : NULL;
            bool term = !cmd || !strcmp(cmd, "$TERM");
            free(cmd);
            zmsg_destroy(&m);
            if (term)
                break;
            continue;
        }
        if (zpoller_terminated(poller))
            break;
    }
    zpoller_destroy(&poller);
    zsock_destroy(&handler);
}

/*  =====================================================================
    Life cycle */

qkv_curve_t *qkv_curve_new(const qkv_config_t *cfg, char *err,
                           size_t err_size) {
    if (!cfg->curve || !cfg->peers) {
        snprintf(err, err_size, "CURVE is off");
        return NULL;
    }
    qkv_curve_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    char path[4300], why[4500];
    snprintf(path, sizeof(path), "%s/%s.key", cfg->curve_key_dir, cfg->node_id);
    if (qkv_key_read(path, true, self->secret_key, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "CURVE: this node's secret key: %s", why);
        qkv_curve_destroy(&self);
        return NULL;
    }
    const char *listed = cfg->peers[cfg->self].key;
    if (zmq_curve_public(self->public_key, self->secret_key) != 0 ||
        strcmp(self->public_key, listed) != 0) {
        snprintf(err, err_size,
                 "CURVE: %s is not the key PEERS lists for node %s (its "
                 "public key is %s, PEERS says %s)",
                 path, cfg->node_id, self->public_key, listed);
        qkv_curve_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < cfg->peer_count; i++) {
        s_member_t *m = &self->members[self->member_count++];
        zmq_z85_decode(m->key, cfg->peers[i].key);
        snprintf(m->id, sizeof(m->id), "%s", cfg->peers[i].id);
    }
    self->any_client = !cfg->client_keys[0];
    if (!self->any_client &&
        s_load_client_keys(self, cfg->client_keys, err, err_size) != 0) {
        qkv_curve_destroy(&self);
        return NULL;
    }
    self->zap = zactor_new(s_zap_actor, self);
    if (!self->zap) {
        snprintf(err, err_size,
                 "CURVE: cannot start the ZAP handler (inproc://zeromq.zap.01 "
                 "taken?)");
        qkv_curve_destroy(&self);
        return NULL;
    }
    qkv_info("CURVE on: public key %s; %zu members; clients: %s",
             self->public_key, self->member_count,
             self->any_client ? "any key" : "CLIENT_KEYS");
    return self;
}

void qkv_curve_destroy(qkv_curve_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_curve_t *self = *self_p;
    zactor_destroy(&self->zap);
    free(self->clients);
    explicit_bzero(self->secret_key, sizeof(self->secret_key));
    free(self);
    *self_p = NULL;
}

const char *qkv_curve_public(const qkv_curve_t *self) {
    return self->public_key;
}

const char *qkv_curve_secret(const qkv_curve_t *self) {
    return self->secret_key;
}

uint64_t qkv_curve_denied_repl(const qkv_curve_t *self) {
    return atomic_load(&((qkv_curve_t *)self)->denied_repl);
}

uint64_t qkv_curve_denied_client(const qkv_curve_t *self) {
    return atomic_load(&((qkv_curve_t *)self)->denied_client);
}
