/*  qkv_wait.c - the actor's wait (qkv_wait.h). */
#include "qkv_wait.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct qkv_wait_t {
    zmq_pollitem_t *items;
    size_t count;
    struct pollfd *fds; /* per item: its descriptor, or its socket's ZMQ_FD */
    bool *ask;          /* per socket item: ask ZMQ_EVENTS before sleeping */
    bool *drained;      /* per item: read to EAGAIN since the last wait */
};

qkv_wait_t *qkv_wait_new(zmq_pollitem_t *items, size_t count) {
    qkv_wait_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->items = items;
    self->count = count;
    self->fds = calloc(count ? count : 1, sizeof(*self->fds));
    self->ask = calloc(count ? count : 1, sizeof(*self->ask));
    self->drained = calloc(count ? count : 1, sizeof(*self->drained));
    if (!self->fds || !self->ask || !self->drained) {
        qkv_wait_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        struct pollfd *p = &self->fds[i];
        p->events = (items[i].events & ZMQ_POLLIN) ? POLLIN : 0;
        if (!items[i].socket) {
            p->fd = items[i].fd;
            continue;
        }
        size_t size = sizeof(p->fd);
        if (zmq_getsockopt(items[i].socket, ZMQ_FD, &p->fd, &size) != 0) {
            qkv_wait_destroy(&self);
            return NULL;
        }
        self->ask[i] = p->events != 0; /* its state is not known yet */
    }
    return self;
}

void qkv_wait_destroy(qkv_wait_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_wait_t *self = *self_p;
    free(self->fds);
    free(self->ask);
    free(self->drained);
    free(self);
    *self_p = NULL;
}

void qkv_wait_drained(qkv_wait_t *self, size_t item) {
    if (item < self->count)
        self->drained[item] = true;
}

void qkv_wait_touched(qkv_wait_t *self, size_t item) {
    if (item < self->count && self->items[item].socket &&
        self->fds[item].events)
        self->ask[item] = true;
}

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether socket has a message to read (processing its commands). */
static bool s_readable(void *socket) {
    uint32_t events = 0;
    size_t size = sizeof(events);
    return zmq_getsockopt(socket, ZMQ_EVENTS, &events, &size) == 0 &&
           (events & ZMQ_POLLIN);
}

int qkv_wait(qkv_wait_t *self, long timeout_ms) {
    zmq_pollitem_t *items = self->items;
    int found = 0;
    /* what last turn may have changed, and what it left unread */
    for (size_t i = 0; i < self->count; i++) {
        bool had = items[i].revents != 0 && !self->drained[i];
        items[i].revents = 0;
        self->drained[i] = false;
        if (items[i].socket && (self->ask[i] || (had && self->fds[i].events))) {
            self->ask[i] = false;
            if (s_readable(items[i].socket)) {
                items[i].revents = ZMQ_POLLIN;
                found++;
            }
        }
    }
    int64_t end = timeout_ms > 0 ? s_now_ms() + timeout_ms : 0;
    for (;;) {
        /* with something found, poll only to see what else is ready, so
           that a busy socket never starves the others */
        long left = found ? 0 : timeout_ms;
        if (end && !found) {
            left = (long)(end - s_now_ms());
            left = left < 0 ? 0 : left;
        }
        int rc = poll(self->fds, (nfds_t)self->count, (int)left);
        if (rc < 0)
            return found ? found : -1;
        if (rc == 0)
            return found; /* the timeout */
        for (size_t i = 0; rc > 0 && i < self->count; i++) {
            struct pollfd *p = &self->fds[i];
            if (!p->revents || items[i].revents)
                continue;
            if (!p->events)
                continue; /* POLLERR or POLLHUP on an unwatched descriptor */
            if (items[i].socket ? s_readable(items[i].socket) : true) {
                items[i].revents = ZMQ_POLLIN;
                found++;
            }
        }
        if (found || timeout_ms == 0)
            return found;
        /* only commands came in: sleep again */
    }
}
