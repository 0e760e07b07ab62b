/*  qkv_sockopt.h - every ZeroMQ socket of a node, made in one place with
    every option set explicitly (czmq's defaults are not relied on), so
    that CURVE and other per-socket settings have one home.
*/
#ifndef QKV_SOCKOPT_H
#define QKV_SOCKOPT_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Routing id the leader's DEALERs use, so a restarted leader is let back
   in by each follower's ROUTER_HANDOVER. */
#define QKV_LEADER_ROUTING_ID "qkv-leader"

/* CURVE for one socket: this node's key pair as Z85 text. A NULL
   qkv_sockopt_curve_t * leaves the socket in plain text. */
typedef struct {
    const char *public_key;
    const char *secret_key;
} qkv_sockopt_curve_t;

/* Leader: a DEALER connected to a follower's replication endpoint; it
   takes answers of at most max_in bytes. NULL with errno set on failure. */
zsock_t *qkv_sockopt_leader_link(const char *endpoint, size_t max_in);

/* With PEERS: a DEALER to a peer's replication ROUTER, with this node's
   NODE_ID as routing id (the peer knows its sender by it). With curve,
   a CURVE client that accepts only server_key (the peer's public key). */
zsock_t *qkv_sockopt_peer_link(const char *endpoint, const char *self_id,
                               size_t max_in, const qkv_sockopt_curve_t *curve,
                               const char *server_key);

/* Follower (and with PEERS every node): the replication ROUTER, bound on
   tcp://bind:port, taking frames of at most max_in bytes. With curve, a
   CURVE server asking ZAP domain QKV_CURVE_DOMAIN_REPL. NULL on
   failure. */
zsock_t *qkv_sockopt_follower_router(const char *bind, int port, size_t max_in,
                                     const qkv_sockopt_curve_t *curve);

/* Every node: the zmq-native client ROUTER on tcp://bind:port, taking
   frames of at most max_in bytes; with curve, ZAP domain
   QKV_CURVE_DOMAIN_CLIENT. NULL on failure. */
zsock_t *qkv_sockopt_client_router(const char *bind, int port, size_t max_in,
                                   const qkv_sockopt_curve_t *curve);

/* The descriptors the node keeps free for REST (its workers and
   civetweb's queue) and its own files and sockets. libzmq accepts as long
   as the kernel lets it, and out of descriptors it retries accept(2) in a
   busy loop, as civetweb does; a ZeroMQ port that accepts a connection
   while fewer than this are free is closed for a second instead
   (qkv_peers.c, qkv_clients.c). */
typedef struct {
    int reserve;
} qkv_fd_budget_t;

/* True when fewer than budget->reserve descriptors are free under the
   current open-file limit (read each time, with the descriptors open:
   /proc/self/fd). */
bool qkv_sockopt_over_budget(const qkv_fd_budget_t *budget);

/* A bound ZeroMQ port that closes for a second when descriptors run short:
   it accepted a connection while fewer than budget->reserve were free, or
   accept(2) failed with EMFILE or ENFILE. Unbinding ends the port's
   connections (clients and peers reconnect by themselves); libzmq cannot
   stop accepting otherwise. The actor's thread only. */
typedef struct {
    void *handle;                  /* the bound libzmq socket */
    char endpoint[96];             /* tcp://BIND:PORT it binds */
    const char *name;              /* "client port", ... for the log */
    const qkv_fd_budget_t *budget; /* NULL: only EMFILE closes it */
    int64_t reopen_at_us;          /* closed until then; 0: open */
    uint64_t closed;               /* times it was closed */
} qkv_port_guard_t;

/* Looks at one event of the port's monitor (ZMQ_EVENT_ACCEPTED,
   ZMQ_EVENT_ACCEPT_FAILED; the others change nothing). */
void qkv_port_guard_event(qkv_port_guard_t *guard, uint16_t event,
                          uint32_t value, int64_t now);

/* Binds a closed port again once its second is over. Returns when to
   look again (0: the port is open). */
int64_t qkv_port_guard_reopen(qkv_port_guard_t *guard, int64_t now);

/* Reads one waiting event of a socket monitor (zmq_socket_monitor's
   PAIR, both of its frames): 0 with its event id and value, -1 when none
   waits. */
int qkv_sockopt_monitor_event(zsock_t *monitor, uint16_t *event,
                              uint32_t *value);

#endif
