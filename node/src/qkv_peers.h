/*  qkv_peers.h - the replication links of a node: the sockets, and the
    simulated network delay.

    A leader has one DEALER per follower (peer i is FOLLOWERS' i-th); a
    follower has one ROUTER its leader connects to (peer 0 is whoever sent
    the last message). With PEERS (a mesh) every node has both: one ROUTER
    where every peer's messages arrive, told apart by routing id, and one
    DEALER per peer for everything it sends that peer. Sends never block: a
   frame that cannot be queued is dropped and reported, and the core probes that
   peer again later.

    Simulated delay (MIN/MAX_DELAY): every frame to a peer waits in that
    peer's FIFO for a delay drawn uniformly from [min, max], and never goes
    before the frame ahead of it; qkv_peers_flush sends what is due.
    Frames coming in are not delayed. Nothing sleeps.

    The actor's thread only.
*/
#ifndef QKV_PEERS_H
#define QKV_PEERS_H

#include "qkv_sockopt.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qkv_peers_t qkv_peers_t;

/* Leader: connects a link to each of the count endpoints, each taking
   answers of at most max_in bytes, delaying frames by [min_delay_us,
   max_delay_us]. Returns NULL with the reason in err. */
qkv_peers_t *qkv_peers_new_leader(char *const *endpoints, size_t count,
                                  size_t max_in, int64_t min_delay_us,
                                  int64_t max_delay_us, char *err,
                                  size_t err_size);

/* Follower: binds the replication ROUTER on tcp://bind:port, taking
   frames of at most max_in bytes. Returns NULL with the reason in err. */
qkv_peers_t *qkv_peers_new_follower(const char *bind, int port, size_t max_in,
                                    char *err, size_t err_size);

/* With PEERS: the replication ROUTER, where every peer's messages come
   in, and one DEALER per peer for everything sent to it. */
typedef struct {
    const char *self_id;     /* this node's NODE_ID: the DEALERs' routing id */
    char *const *endpoints;  /* peer i's replication endpoint */
    const char *const *ids;  /* peer i's NODE_ID */
    const char *const *keys; /* peer i's public key (with curve) */
    size_t count;            /* peers */
    const char *bind;        /* the ROUTER: tcp://bind:port */
    int port;
    size_t max_in;                      /* largest frame taken */
    int64_t min_delay_us, max_delay_us; /* simulated delay */
    const qkv_sockopt_curve_t *curve;   /* NULL: plain text */
    const qkv_fd_budget_t *fds;         /* descriptors kept free; NULL: none */
} qkv_mesh_opts_t;

/* With PEERS: binds the ROUTER (peer i is the one whose routing id is
   ids[i]; with curve, also the member its key authenticated: a message
   whose routing id and User-Id differ is dropped and counted) and
   connects the DEALERs. Returns NULL with the reason in err. */
qkv_peers_t *qkv_peers_new_mesh(const qkv_mesh_opts_t *opts, char *err,
                                size_t err_size);

/* Mesh with curve: messages dropped because the routing id named another
   member than the key that authenticated the connection. */
uint64_t qkv_peers_forged(const qkv_peers_t *self);

/* Mesh: times the replication port was closed for a second because it
   accepted a connection while fewer descriptors than the budget keeps
   were free, or accept(2) failed for want of them (libzmq would retry it
   in a busy loop); it is bound again by qkv_peers_flush. */
uint64_t qkv_peers_closed(const qkv_peers_t *self);

/* Closes every socket and drops held frames; nulls *self_p; NULL-safe. */
void qkv_peers_destroy(qkv_peers_t **self_p);

/* Number of sockets to poll, and their libzmq handles (items[i].socket
   set, the rest zeroed), at most max. Mesh: the ROUTER and its monitor
   (reading item 1 reads the monitor and returns -1). */
size_t qkv_peers_poll_items(qkv_peers_t *self, zmq_pollitem_t *items,
                            size_t max);

/* Queues a frame (copied) to peer; a follower's peer 0 is the last
   sender. delayed: it waits out the simulated delay (APPENDs and
   snapshots; answers go at once). Returns 0, or -1 when it was dropped
   (absent peer, full queue, no sender yet, out of memory). */
int qkv_peers_send(qkv_peers_t *self, size_t peer, const void *data,
                   size_t size, bool delayed, int64_t now);

/* The poll items (bit i: item i) sent on since the last call: with the
   static roles the sockets frames go out on are the ones answers come
   back on, and a send may take the command that would have woken the
   poll (qkv_wait_touched). The mesh sends only on sockets it does not
   poll: always 0. */
uint64_t qkv_peers_take_sent(qkv_peers_t *self);

/* Sends the held frames that are due. Returns a mask of the peers whose
   frame could not be sent (bit i: peer i), and sets *next_due to when the
   next held frame is due (0: none). */
uint64_t qkv_peers_flush(qkv_peers_t *self, int64_t now, int64_t *next_due);

/* Reads one waiting message from socket item (an index into what
   qkv_peers_poll_items gave). Returns -1 when none waits; 1 with *peer and
   *frame for a well-framed message; 0 for a message of the wrong shape
   (dropped); 2 for one whose routing id is not the member its key
   authenticated (dropped, counted in qkv_peers_forged). *frame is
   initialised unless -1 is returned: the caller closes it. */
int qkv_peers_recv(qkv_peers_t *self, size_t item, size_t *peer,
                   zmq_msg_t *frame);

/* Follower: the last message read was a valid one from the leader:
   answers go to its sender from now on. */
void qkv_peers_keep_sender(qkv_peers_t *self);

/* Reads one message from a ROUTER without waiting: returns -1 when none
   waits (nothing to close), else initialises *id and *body (the caller
   closes both) and returns 1 for a well-framed [routing id][frame]
   message, 0 for any other shape (its extra frames are dropped). */
int qkv_router_recv(void *router, zmq_msg_t *id, zmq_msg_t *body);

#endif
