/*  kit_curve.h - CURVE pieces for the cluster suites that play a member,
    a stranger or a fake leader (kit_curve.c; library qkv_testkit_curve,
    which links the node's config parser, the replication codec and
    libzmq). Nothing here asserts: each call says whether it worked, so
    suite set-ups may use it too.
*/
#ifndef KIT_CURVE_H
#define KIT_CURVE_H

#include "kit.h"
#include "qkv_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char pub[41]; /* Z85 */
    char sec[41];
} kit_keypair_t;

/* A new key pair; with dir and name, its secret also in dir/name.key
   (mode 0600, as qkv keygen writes it). 0 or -1. */
int kit_keypair(kit_keypair_t *p, const char *dir, const char *name);

/* A fresh key folder for a PEERS cluster of count nodes, dir =
   LOG_DIR/keys-SUITE-PID (mode 0700, emptied first): node k's pair in
   keys[k], its secret in dir/nodek.key, and pubs[k] pointing at its
   public key (for kit_cluster_opts_t.peer_keys). 0 or -1. */
int kit_node_keys(const char *suite, size_t count, kit_keypair_t *keys,
                  const char **pubs, char *dir, size_t dir_size);

/* What a forger needs of a PEERS cluster the kit started (nodes node0 ..
   nodeN, WRITE_QUORUM 1): node k's cluster id, term and last index from
   its /health, and the cluster hash the nodes compute. */
typedef struct {
    uint64_t cluster_id, term, last, hash;
} kit_cluster_facts_t;

/* 0, or -1 when node k does not answer or the hash cannot be computed. */
int kit_cluster_facts(const kit_cluster_t *c, size_t k,
                      kit_cluster_facts_t *facts);

/* The fake leader's frames, well-formed: an APPEND of term + 100 with an
   entry "forged" (its commit index covering it when commit), a VOTE of
   term + 200 asking for a handover, a TIMEOUT_NOW of term + 300. */
typedef struct {
    qkv_encoder_t *encoders[3];
    const void *frames[3];
    size_t sizes[3];
} kit_forgery_t;

int kit_forge_leader(kit_forgery_t *f, const kit_cluster_facts_t *c,
                     bool commit);
void kit_forgery_free(kit_forgery_t *f);

/* Sends frames to tcp://127.0.0.1:port from a DEALER with routing id as
   (and, with p, CURVE keys p trusting server_pub), again and again for a
   second - a routing id a live member uses passes back and forth between
   it and us (ROUTER_HANDOVER), so some rounds are lost - then waits a
   moment. */
void kit_send_as(int port, const char *as, const kit_keypair_t *p,
                 const char *server_pub, const void *const *frames,
                 const size_t *sizes, size_t count);

#endif
