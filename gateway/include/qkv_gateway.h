/*  qkv_gateway.h - the REST API of a node, served by civetweb.

    The gateway owns civetweb and its worker threads; workers read the
    node's store and hand writes to the node (qkv_node_write); they never
    touch a replication socket. Routes and fields are those of DESIGN.md and
    the README; access control (bearer tokens), TLS and the REST limits
    are the README's "Security".
*/
#ifndef QKV_GATEWAY_H
#define QKV_GATEWAY_H

#include "qkv_node.h"
#include <stddef.h>

typedef struct qkv_gateway_t qkv_gateway_t;

/* Starts listening on the node's BIND:PORT with HTTP_THREADS workers and
   keep-alive on: HTTPS when TLS_CERT_FILE is set (TLS 1.2 and later),
   bearer tokens when HTTP_TOKENS_FILE is (read here, once; a file group
   or others may use is refused), MAX_BODY_BYTES and REQUEST_TIMEOUT_MS
   as limits. Returns NULL with a reason in err when it cannot (port in
   use, a bad tokens file as FILE:LINE, a certificate civetweb cannot
   load, ...); it never falls back to plain HTTP, and no message quotes a
   token. The node must outlive the gateway. */
qkv_gateway_t *qkv_gateway_new(qkv_node_t *node, char *err, size_t err_size);

/* Stops civetweb (joins its workers) and nulls *self_p; safe on NULL. */
void qkv_gateway_destroy(qkv_gateway_t **self_p);

#endif
