/*  qkv_clients.h - the zmq-native client endpoint (PROTOCOL.md, "Client
    protocol"), a class the actor owns: a ROUTER on CLIENT_PORT, the
    decoding of request frames, reads served from the store, writes handed
    to the door, and answers batched per client.

    Dependencies run one way: the actor owns the door and this endpoint;
    the endpoint hands writes to the door; the door answers through the
    actor's hook, which calls qkv_clients_answer. Nothing here calls back
    into the actor.

    Answers to one client are gathered into one open frame and go out when
    an answer for another client comes, or at qkv_clients_flush (the end of
    the actor's turn): a pipelined client gets one frame per run of
    answers, however they completed.

    The actor's thread only.
*/
#ifndef QKV_CLIENTS_H
#define QKV_CLIENTS_H

#include "qkv_door.h"

typedef struct qkv_clients_t qkv_clients_t;

/* Binds the client ROUTER on BIND:CLIENT_PORT. leader_endpoint is the
   actor's text of where the leader takes clients ("" unknown), read when
   a write is answered not_leader. Returns NULL with the reason in err. */
qkv_clients_t *qkv_clients_new(qkv_node_t *node, qkv_door_t *door,
                               const char *leader_endpoint,
                               const qkv_fd_budget_t *fds, char *err,
                               size_t err_size);
/* Drops parked reads unanswered and closes the endpoint; nulls *self_p;
   safe on NULL. (Writes waiting in the door are answered by
   qkv_door_fail_all before this.) */
void qkv_clients_destroy(qkv_clients_t **self_p);

/* The two sockets to poll (the ROUTER and its disconnect monitor) into
   items[0] and items[1]; returns 2. */
size_t qkv_clients_poll_items(qkv_clients_t *self, zmq_pollitem_t *items);

/* Counts the disconnects reported, then reads and serves waiting request
   frames (at most a bounded number per call, so the actor's other
   sockets stay served). Returns true when it read all there was. */
bool qkv_clients_read(qkv_clients_t *self, int64_t now);

/* Whether answers went out on the client socket since the last call. */
bool qkv_clients_take_sent(qkv_clients_t *self);

/* The door's answer to a write of this endpoint's (origin->proto is
   QKV_PROTO_ZMQ). */
void qkv_clients_answer(qkv_clients_t *self, const qkv_origin_t *origin,
                        const qkv_write_result_t *result);

/* The store's applied index reached applied: answers the reads that
   waited for it. */
void qkv_clients_applied(qkv_clients_t *self, uint64_t applied);

/* Answers reads whose wait passed; returns the next deadline, 0 none. */
int64_t qkv_clients_expire(qkv_clients_t *self, int64_t now);

/* Sends the frame of answers still open. */
void qkv_clients_flush(qkv_clients_t *self);

#endif
