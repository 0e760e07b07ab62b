/*  qkv_curve.h - CURVE on the node's ZeroMQ links: its key pair, who may
    connect, and the ZAP handler that says so.

    With CURVE=on every ZeroMQ socket of a node is encrypted and
    authenticated. The replication ROUTER lets in only the members of
    PEERS (each by the public key its entry lists) and names each
    connection by the member's NODE_ID: ZeroMQ hands that name to every
    message as its User-Id, so a message's sender is the member whose key
    authenticated the connection, never an id inside the payload. The
    client ROUTER lets in the keys of CLIENT_KEYS (User-Id "read" or
    "write"), or any key when CLIENT_KEYS is any (User-Id "write").

    libzmq asks a ZAP handler (RFC 27) at inproc://zeromq.zap.01 of the
    socket's context; qkv runs its own, one thread per node, started
    before any socket binds. Denials are counted for /metrics.
*/
#ifndef QKV_CURVE_H
#define QKV_CURVE_H

#include "qkv_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ZAP domains of the two listeners (zmq_setsockopt ZMQ_ZAP_DOMAIN). */
#define QKV_CURVE_DOMAIN_REPL "qkv-repl"
#define QKV_CURVE_DOMAIN_CLIENT "qkv-client"

/* User-Ids of client connections. */
#define QKV_CURVE_USER_READ "read"
#define QKV_CURVE_USER_WRITE "write"

#define QKV_CLIENT_KEYS_MAX 10000        /* keys in a CLIENT_KEYS file */
#define QKV_CLIENT_KEYS_FILE_MAX 1048576 /* its bytes */

/* One client key of CLIENT_KEYS. */
typedef struct {
    uint8_t key[32]; /* the public key, decoded */
    bool write;      /* write (and read), else read only */
} qkv_client_key_t;

/* Parses the text of a CLIENT_KEYS file (len bytes, need not end in
   NUL): lines 'read KEY' or 'write KEY', optionally followed by a name;
   '#' starts a comment line; blank lines are skipped. Fills keys (room
   for max). Returns the number of keys, or -1 with err naming the line. A
   key listed twice is an error. */
int qkv_client_keys_parse(const char *text, size_t len, qkv_client_key_t *keys,
                          size_t max, char *err, size_t err_size);

typedef struct qkv_curve_t qkv_curve_t;

/* Loads this node's secret key (CURVE_KEY_DIR/NODE_ID.key, owner-only),
   checks that its public key is the one PEERS lists for this node, loads
   CLIENT_KEYS, and starts the ZAP handler. NULL with err on failure (and
   for a config without CURVE). */
qkv_curve_t *qkv_curve_new(const qkv_config_t *cfg, char *err, size_t err_size);

/* Stops the ZAP handler and wipes the secret key. */
void qkv_curve_destroy(qkv_curve_t **self_p);

/* This node's keys as Z85 text. */
const char *qkv_curve_public(const qkv_curve_t *self);
const char *qkv_curve_secret(const qkv_curve_t *self);

/* Connections refused so far: on the replication port (a key not in
   PEERS) and on the client port (a key not in CLIENT_KEYS). */
uint64_t qkv_curve_denied_repl(const qkv_curve_t *self);
uint64_t qkv_curve_denied_client(const qkv_curve_t *self);

#endif
