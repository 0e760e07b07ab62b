/*  qkv_wait.h - the actor's wait: zmq_poll without its system calls.

    zmq_poll first polls every descriptor with a zero timeout, then asks
    every ZeroMQ socket for ZMQ_EVENTS (a getpid(2) and a poll(2) each when
    the socket has nothing), and does it all again once something happened:
    about twenty system calls a turn for five sockets, measured at 33
    poll(2) and 32 getpid(2) calls per REST write in the leader's actor.

    qkv_wait polls the sockets' ZMQ_FD descriptors and the plain ones once,
    and asks ZMQ_EVENTS only of the sockets whose descriptor signalled and
    of those whose state the last turn may have changed. ZMQ_FD signals
    only a change, and any call on a socket may take the command that
    would have signalled it (zmq_getsockopt(3), ZMQ_FD), so: a socket that
    had events last turn (it was read from, perhaps not to the end) is
    asked again before the next sleep, and so is one the caller marks with
    qkv_wait_touched because it sent on it. Sockets the loop only sends on
    (the mesh's DEALERs) are not polled at all.
*/
#ifndef QKV_WAIT_H
#define QKV_WAIT_H

#include <stddef.h>
#include <zmq.h>

typedef struct qkv_wait_t qkv_wait_t;

/* A wait over items (count of them, the caller's array, which must
   outlive the wait; ZMQ_POLLIN is the only event used). Returns NULL when
   out of memory or a socket's ZMQ_FD cannot be read. */
qkv_wait_t *qkv_wait_new(zmq_pollitem_t *items, size_t count);
void qkv_wait_destroy(qkv_wait_t **self_p);

/* Waits up to timeout_ms (-1: for ever, 0: not at all) until an item is
   readable and sets each item's revents (ZMQ_POLLIN or 0). Returns how
   many items are readable, or -1 with errno set (EINTR: a signal). */
int qkv_wait(qkv_wait_t *self, long timeout_ms);

/* The caller sent on item's socket: its ZMQ_EVENTS is asked before the
   next sleep. */
void qkv_wait_touched(qkv_wait_t *self, size_t item);

/* The caller read item's socket until it had nothing (EAGAIN, which took
   its commands): unless touched, it is not asked again before the next
   sleep. A socket with events that is not drained is asked. */
void qkv_wait_drained(qkv_wait_t *self, size_t item);

#endif
