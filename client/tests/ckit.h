/*  ckit.h - helpers the client suites share on top of the test kit:
    clusters whose client ports answer, client handles that must open,
    and whole-node snapshots through the client protocol.
*/
#ifndef CKIT_H
#define CKIT_H

#include "kit.h"
#include "qkv_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKIT_WAIT_MS 30000 /* deadline of anything replication does */

/* Starts a leader and `followers` followers (write_quorum -1: the
   default) through kit_cluster_start and waits until every node's client
   port answers health. Returns 0 or -1 (everything stopped). */
int ckit_cluster_start(kit_cluster_t *cluster, size_t followers,
                       int write_quorum);

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

#endif
