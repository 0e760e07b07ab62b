/*  ckit.h - helpers the client suites share on top of the test kit:
    clusters whose client ports answer, client handles that must open,
    whole-node snapshots through the client protocol, and fake nodes that
    answer what a test tells them to.
*/
#ifndef CKIT_H
#define CKIT_H

#include "kit.h"
#include "qkv_client.h"
#include "qkv_cmsg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKIT_WAIT_MS 30000 /* deadline of anything replication does */

/* Starts a leader and `followers` followers (write_quorum -1: the
   default; leader_args: more leader flags, NULL-terminated, or NULL)
   through kit_cluster_start and waits until every node's client port
   answers health and the leader sees every follower connected (so each
   knows where to redirect writes). Returns 0 or -1 (everything
   stopped). */
int ckit_cluster_start(kit_cluster_t *cluster, size_t followers,
                       int write_quorum, const char *const *leader_args);

/* Writes tcp://127.0.0.1:CLIENT_PORT of node into buf. */
void ckit_endpoint(const kit_node_t *node, char *buf, size_t size);

/* A handle for endpoints with options (NULL: defaults); prints why and
   returns NULL when it cannot be made. */
qkv_client_t *ckit_client(const char *endpoints,
                          const qkv_client_options_t *options);

/* Every entry of one node, sorted by key; strings owned. */
typedef struct {
    qkv_item_t *items;
    size_t count;
    uint64_t applied_index;
} ckit_snapshot_t;

/* Dumps the node at endpoint once it has applied min_index. Returns 0 or
   the qkv_err_t of the failure (printed). */
int ckit_snapshot(const char *endpoint, uint64_t min_index,
                  ckit_snapshot_t *snap);
void ckit_snapshot_free(ckit_snapshot_t *snap);

/* True when both hold the same keys with the same values and seqs; prints
   the first difference otherwise. */
bool ckit_snapshot_same(const ckit_snapshot_t *a, const ckit_snapshot_t *b);

/* The item with key in snap, or NULL. */
const qkv_item_t *ckit_snapshot_find(const ckit_snapshot_t *snap,
                                     const char *key);

/* Waits until the leader at endpoint has committed and applied every entry
   it holds; sets *index to that index. */
bool ckit_settled(const char *endpoint, int timeout_ms, uint64_t *index);

/*  ---------------------------------------------------------------------
    Fake nodes: a ROUTER on a free port of 127.0.0.1, served by a thread
    that decodes each request frame and asks answer() for each request.
    answer() runs on that thread; it fills res (id already set; strings
    and health must stay valid until it is called again) and returns
    true, or returns false to stay silent about that request. The answers
    to one frame go back in one frame, built as an open frame
    (qkv_cenc_begin_open). A frame error is answered under id 0 with the
    decoder's reason, as a node does. */

typedef bool(ckit_answer_fn)(const qkv_creq_t *req, qkv_cres_t *res, void *arg);

typedef struct ckit_fake_t ckit_fake_t;

/* Starts a fake node; NULL (printed) when it cannot. */
ckit_fake_t *ckit_fake_new(ckit_answer_fn *answer, void *arg);

/* Its endpoint, tcp://127.0.0.1:PORT. */
const char *ckit_fake_endpoint(const ckit_fake_t *self);

/* Stops the thread, closes the socket, nulls *self_p; safe on NULL. */
void ckit_fake_destroy(ckit_fake_t **self_p);

#endif
