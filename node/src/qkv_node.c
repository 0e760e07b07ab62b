/*  qkv_node.c - the node facade: starts the store and the replication
    actor, hands writes from any thread to the actor and waits for their
    commit, and publishes status and metrics. See qkv_node.h.
*/
#include "qkv_node_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

const double qkv_latency_bounds_s[QKV_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   5.0};

/*  =====================================================================
    Waiters */

/* Makes a waiter and records it for destroy (pool_mutex held). */
static qkv_waiter_t *s_waiter_make(qkv_node_t *self) {
    if (self->all_count == self->all_cap) {
        size_t cap = self->all_cap * 2 + 64;
        qkv_waiter_t **all = realloc(self->all, cap * sizeof(*all));
        if (!all)
            return NULL;
        self->all = all;
        self->all_cap = cap;
    }
    qkv_waiter_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&w->mutex, NULL);
    self->all[self->all_count++] = w;
    return w;
}

/* Takes a waiter from the pool (or makes one) with both references. */
static qkv_waiter_t *s_waiter_get(qkv_node_t *self) {
    pthread_mutex_lock(&self->pool_mutex);
    qkv_waiter_t *w = self->pool;
    if (w)
        self->pool = w->next;
    else
        w = s_waiter_make(self);
    pthread_mutex_unlock(&self->pool_mutex);
    if (w) {
        w->state = QKV_WAITER_QUEUED;
        memset(&w->result, 0, sizeof(w->result));
        w->result.status = QKV_WRITE_UNAVAILABLE;
        w->late = false;
        w->entry = NULL;
        w->next = NULL;
        atomic_store(&w->refs, 2);
    }
    return w;
}

void qkv_waiter_release(qkv_node_t *node, qkv_waiter_t *waiter) {
    if (atomic_fetch_sub(&waiter->refs, 1) != 1)
        return;
    free(waiter->entry); /* never appended */
    waiter->entry = NULL;
    pthread_mutex_lock(&node->pool_mutex);
    waiter->next = node->pool;
    node->pool = waiter;
    pthread_mutex_unlock(&node->pool_mutex);
}

bool qkv_waiter_take(qkv_waiter_t *waiter) {
    pthread_mutex_lock(&waiter->mutex);
    bool taken = waiter->state == QKV_WAITER_QUEUED;
    if (taken)
        waiter->state = QKV_WAITER_TAKEN;
    pthread_mutex_unlock(&waiter->mutex);
    return taken;
}

void qkv_waiter_numbered(qkv_waiter_t *waiter, uint64_t index) {
    pthread_mutex_lock(&waiter->mutex);
    waiter->result.index = index;
    if (waiter->late) /* only a worker past its deadline waits for this */
        pthread_cond_signal(&waiter->cond);
    pthread_mutex_unlock(&waiter->mutex);
}

void qkv_waiter_answer(qkv_node_t *node, qkv_waiter_t *waiter,
                       const qkv_write_result_t *result) {
    pthread_mutex_lock(&waiter->mutex);
    waiter->state = QKV_WAITER_DONE;
    waiter->result = *result;
    pthread_cond_signal(&waiter->cond);
    pthread_mutex_unlock(&waiter->mutex);
    qkv_waiter_release(node, waiter);
}

/*  =====================================================================
    Inbox */

/* Queues a waiter for the actor; returns -1 when the node is stopping. */
static int s_inbox_push(qkv_node_t *self, qkv_waiter_t *w) {
    pthread_mutex_lock(&self->inbox_mutex);
    if (self->stopping) {
        pthread_mutex_unlock(&self->inbox_mutex);
        return -1;
    }
    bool was_empty = self->inbox_head == NULL;
    if (was_empty)
        self->inbox_head = w;
    else
        self->inbox_tail->next = w;
    self->inbox_tail = w;
    pthread_mutex_unlock(&self->inbox_mutex);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t rc = write(self->wake_fd, &one, sizeof(one));
        (void)rc; /* an eventfd write fails only at overflow: already woken */
    }
    return 0;
}

qkv_waiter_t *qkv_node_inbox_take(qkv_node_t *node) {
    uint64_t count;
    ssize_t rc = read(node->wake_fd, &count, sizeof(count));
    (void)rc; /* EAGAIN: nothing signalled since the last take */
    pthread_mutex_lock(&node->inbox_mutex);
    qkv_waiter_t *list = node->inbox_head;
    node->inbox_head = node->inbox_tail = NULL;
    pthread_mutex_unlock(&node->inbox_mutex);
    return list;
}

qkv_waiter_t *qkv_node_inbox_close(qkv_node_t *node) {
    pthread_mutex_lock(&node->inbox_mutex);
    node->stopping = true;
    qkv_waiter_t *list = node->inbox_head;
    node->inbox_head = node->inbox_tail = NULL;
    pthread_mutex_unlock(&node->inbox_mutex);
    return list;
}

/*  =====================================================================
    Writes */

void qkv_node_observe(qkv_node_t *node, qkv_proto_t proto, int64_t us) {
    qkv_proto_counters_t *c = &node->by_proto[proto];
    double s = (double)us / 1e6;
    int b = 0;
    while (b < QKV_LATENCY_BUCKETS && s > qkv_latency_bounds_s[b])
        b++;
    atomic_fetch_add_explicit(&c->latency_le[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->latency_sum_us, (uint64_t)(us > 0 ? us : 0),
                              memory_order_relaxed);
}

/* A deadline on the monotonic clock, us from now. */
static struct timespec s_deadline(int64_t us) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + us * 1000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    return ts;
}

/* How long a worker waits past REPLICATION_TIMEOUT_MS for the actor, which
   answers timeouts itself, before it gives up on it (a paused or wedged
   actor). */
#define S_BACKSTOP_US 250000

void qkv_node_write(qkv_node_t *self, const qkv_write_t *write,
                    qkv_write_result_t *result) {
    int64_t start = qkv_now_us();
    memset(result, 0, sizeof(*result));
    result->status = QKV_WRITE_UNAVAILABLE;
    if (atomic_load(&self->role) != QKV_ROLE_LEADER) {
        result->status =
            self->config.peers && atomic_load(&self->leader_peer) < 0
                ? QKV_WRITE_NO_LEADER
                : QKV_WRITE_NOT_LEADER;
        return;
    }
    qkv_waiter_t *w = s_waiter_get(self);
    if (!w)
        return;
    w->start_us = start;
    w->entry = qkv_entry_new(write->op, write->key, write->key_len,
                             write->value, write->value_len);
    if (w->entry) {
        w->entry->client_id = write->client_id;
        w->entry->client_seq = write->client_seq;
    }
    if (!w->entry || s_inbox_push(self, w) != 0) {
        qkv_waiter_release(self, w); /* the actor's reference */
        qkv_waiter_release(self, w);
        return;
    }
    struct timespec backstop = s_deadline(
        (int64_t)self->config.replication_timeout_ms * 1000 + S_BACKSTOP_US);
    pthread_mutex_lock(&w->mutex);
    int rc = 0;
    while (w->state != QKV_WAITER_DONE && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cond, &w->mutex, &backstop);
    if (w->state == QKV_WAITER_QUEUED) {
        /* the actor never took it: it never will, and nothing is written */
        w->state = QKV_WAITER_CANCELLED;
        w->result.status = QKV_WRITE_UNAVAILABLE;
    } else if (w->state == QKV_WAITER_TAKEN) {
        /* taken: wait until it has its index (the actor is at it) */
        w->late = true;
        while (w->state == QKV_WAITER_TAKEN && !w->result.index)
            pthread_cond_wait(&w->cond, &w->mutex);
        if (w->state == QKV_WAITER_TAKEN)
            w->result.status = QKV_WRITE_TIMEOUT;
    }
    *result = w->result;
    pthread_mutex_unlock(&w->mutex);
    qkv_waiter_release(self, w);
    result->latency_us = qkv_now_us() - start;
}

/*  =====================================================================
    Read-your-writes */

/* A waiter registers before it checks the applied index, under the mutex
   it sleeps on; the actor advances the index before it looks for waiters
   and broadcasts under that mutex: no wake-up is lost. */
int qkv_node_wait_applied(qkv_node_t *self, uint64_t index, int wait_ms) {
    if (qkv_store_applied_index(self->store) >= index)
        return 0;
    if (wait_ms <= 0)
        return -1;
    struct timespec deadline = s_deadline((int64_t)wait_ms * 1000);
    atomic_fetch_add(&self->applied_waiters, 1);
    pthread_mutex_lock(&self->applied_mutex);
    int rc = 0;
    while (qkv_store_applied_index(self->store) < index && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&self->applied_cond, &self->applied_mutex,
                                    &deadline);
    bool ok = qkv_store_applied_index(self->store) >= index;
    pthread_mutex_unlock(&self->applied_mutex);
    atomic_fetch_sub(&self->applied_waiters, 1);
    return ok ? 0 : -1;
}

void qkv_node_applied_advanced(qkv_node_t *node) {
    if (atomic_load(&node->applied_waiters) == 0)
        return;
    pthread_mutex_lock(&node->applied_mutex);
    pthread_cond_broadcast(&node->applied_cond);
    pthread_mutex_unlock(&node->applied_mutex);
}

/*  =====================================================================
    Status and metrics */

void qkv_node_set_error(qkv_node_t *node, const char *fmt, ...) {
    char error[sizeof(node->error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error, sizeof(error), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&node->error_mutex);
    bool changed = strcmp(error, node->error) != 0;
    memcpy(node->error, error, sizeof(error));
    pthread_mutex_unlock(&node->error_mutex);
    if (changed && error[0])
        qkv_error("%s", error);
    else if (changed)
        qkv_info("healthy again");
}

void qkv_node_status(qkv_node_t *self, qkv_node_status_t *st) {
    memset(st, 0, sizeof(*st));
    st->role = (qkv_role_t)atomic_load(&self->role);
    st->elections = self->config.peers != NULL;
    if (st->elections) {
        int leader = atomic_load(&self->leader_peer);
        if (leader >= 0)
            snprintf(st->leader_id, sizeof(st->leader_id), "%s",
                     self->config.peers[leader].id);
        st->voter = atomic_load(&self->voter);
        st->last_election_ms = atomic_load(&self->last_election_ms);
        st->elections_won = atomic_load(&self->elections_won);
        st->step_downs = atomic_load(&self->step_downs);
        st->votes_granted = atomic_load(&self->votes_granted);
    }
    uint64_t id = atomic_load(&self->cluster_id);
    if (id)
        snprintf(st->cluster_id, sizeof(st->cluster_id), "%016llx",
                 (unsigned long long)id);
    st->term = atomic_load(&self->term);
    st->last_index = atomic_load(&self->last_index);
    st->commit_index = atomic_load(&self->commit_index);
    st->applied_index = qkv_store_applied_index(self->store);
    st->durable_index = atomic_load(&self->durable_index);
    st->snapshot_index = atomic_load(&self->snapshot_index);
    st->serving = atomic_load(&self->serving);
    if (st->role != QKV_ROLE_LEADER) {
        uint64_t commit = atomic_load(&self->leader_commit);
        st->syncing = !atomic_load(&self->synced);
        st->behind =
            commit > st->applied_index ? commit - st->applied_index : 0;
    }
    st->max_frame_bytes = self->client_frame_max;
    pthread_mutex_lock(&self->error_mutex);
    memcpy(st->error, self->error, sizeof(st->error));
    pthread_mutex_unlock(&self->error_mutex);

    int64_t now = qkv_now_us();
    int64_t alive_us = (int64_t)self->config.heartbeat_ms * 3000 + 100000;
    st->follower_count = self->config.follower_count;
    for (size_t i = 0; i < st->follower_count; i++) {
        qkv_follower_status_t *f = &st->followers[i];
        if (st->elections)
            snprintf(f->id, sizeof(f->id), "%s",
                     qkv_config_peer(&self->config, i)->id);
        else
            snprintf(f->id, sizeof(f->id), "follower%zu", i + 1);
        snprintf(f->endpoint, sizeof(f->endpoint), "%s",
                 self->config.followers[i]);
        int64_t last = atomic_load(&self->followers[i].last_ack_us);
        f->connected = last && now - last <= alive_us;
        f->acked_index = atomic_load(&self->followers[i].acked_index);
        f->lag = st->last_index > f->acked_index
                     ? st->last_index - f->acked_index
                     : 0;
    }
}

const char *qkv_node_read_refusal(qkv_node_t *self) {
    bool leader = atomic_load(&self->role) == QKV_ROLE_LEADER;
    if (leader && !atomic_load_explicit(&self->serving, memory_order_acquire))
        return "the leader's term is starting: its first entry is not "
               "committed yet; try again";
    if (!leader && !self->config.syncing_reads &&
        !atomic_load_explicit(&self->synced, memory_order_acquire))
        return "this follower is catching up with the leader "
               "(SYNCING_READS=refuse); try again or read elsewhere";
    return NULL;
}

const char *qkv_node_read_confirm(qkv_node_t *self) {
    if (!self->config.peers || atomic_load(&self->role) != QKV_ROLE_LEADER)
        return NULL;
    if (qkv_now_us() < atomic_load(&self->lease_until_us))
        return NULL;
    return "this leader's read lease ran out (it has not heard from enough "
           "nodes lately; another may lead by now): try again";
}

static void s_wake(qkv_node_t *self) {
    uint64_t one = 1;
    ssize_t rc = write(self->wake_fd, &one, sizeof(one));
    (void)rc; /* fails only at overflow: already woken */
}

static qkv_transfer_t s_transfer_to(qkv_node_t *self, int index,
                                    int timeout_ms) {
    if (atomic_load(&self->role) != QKV_ROLE_LEADER)
        return QKV_TRANSFER_NOT_LEADER;
    if (index == (int)self->config.self)
        return QKV_TRANSFER_DONE;
    atomic_store(&self->transfer_state, QKV_TRANSFER_RUNNING);
    atomic_store(&self->transfer_to, index);
    s_wake(self);
    int64_t deadline = qkv_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        if (atomic_load(&self->leader_peer) == index &&
            atomic_load(&self->role) != QKV_ROLE_LEADER)
            return QKV_TRANSFER_DONE;
        int st = atomic_load(&self->transfer_state);
        if (st != QKV_TRANSFER_RUNNING)
            return (qkv_transfer_t)st;
        if (qkv_now_us() >= deadline)
            return QKV_TRANSFER_GAVE_UP;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

qkv_transfer_t qkv_node_transfer_leader(qkv_node_t *self, const char *to,
                                        int timeout_ms) {
    const qkv_config_t *cfg = &self->config;
    if (!cfg->peers)
        return QKV_TRANSFER_NOT_LEADER;
    for (size_t i = 0; i < cfg->peer_count; i++)
        if (!strcmp(cfg->peers[i].id, to))
            return s_transfer_to(self, (int)i, timeout_ms);
    return QKV_TRANSFER_UNKNOWN;
}

bool qkv_node_hand_over(qkv_node_t *self) {
    const qkv_config_t *cfg = &self->config;
    if (!cfg->peers || atomic_load(&self->role) != QKV_ROLE_LEADER)
        return false;
    /* the follower that acknowledged the most */
    int best = -1;
    uint64_t most = 0;
    for (size_t i = 0; i < cfg->follower_count; i++) {
        uint64_t acked = atomic_load(&self->followers[i].acked_index);
        if (best < 0 || acked > most) {
            best = (int)i;
            most = acked;
        }
    }
    if (best < 0)
        return false;
    size_t index = (size_t)best < cfg->self ? (size_t)best : (size_t)best + 1;
    qkv_info("handing leadership over to %s before stopping",
             cfg->peers[index].id);
    qkv_transfer_t rc =
        s_transfer_to(self, (int)index, cfg->election_timeout_ms * 2);
    if (rc != QKV_TRANSFER_DONE)
        qkv_warn("handover to %s did not complete; stopping anyway (the "
                 "others elect a leader after an election timeout)",
                 cfg->peers[index].id);
    return rc == QKV_TRANSFER_DONE;
}

bool qkv_node_is_leader(qkv_node_t *self) {
    return atomic_load(&self->role) == QKV_ROLE_LEADER;
}

void qkv_node_leader_url(qkv_node_t *self, char *out, size_t size) {
    const qkv_config_t *cfg = &self->config;
    int leader = cfg->peers ? atomic_load(&self->leader_peer) : -1;
    snprintf(out, size, "%s",
             !cfg->peers   ? cfg->leader_url
             : leader >= 0 ? cfg->peers[leader].http
                           : "");
}

void qkv_node_metrics(qkv_node_t *self, qkv_metrics_t *m) {
    memset(m, 0, sizeof(*m));
    m->fsyncs = atomic_load(&self->fsyncs);
    m->fsync_failures = atomic_load(&self->fsync_failures);
    m->entries_synced = atomic_load(&self->entries_synced);
    m->fsync_seconds = (double)atomic_load(&self->fsync_us) / 1e6;
    for (int i = 0; i < 8; i++)
        m->fsync_le[i] = atomic_load(&self->fsync_le[i]);
    m->log_disk_bytes = atomic_load(&self->log_disk_bytes);
    m->log_write_errors = atomic_load(&self->log_write_errors);
    m->recovery_seconds = (double)atomic_load(&self->recovery_us) / 1e6;
    m->snapshots = atomic_load(&self->snapshots);
    m->snapshot_bytes = atomic_load(&self->snapshot_bytes);
    m->snapshots_sent = atomic_load(&self->snapshots_sent);
    m->snapshots_installed = atomic_load(&self->snapshots_installed);
    m->term = atomic_load(&self->term);
    m->elections_won = atomic_load(&self->elections_won);
    m->step_downs = atomic_load(&self->step_downs);
    m->votes_granted = atomic_load(&self->votes_granted);
    for (int p = 0; p < QKV_PROTO_COUNT; p++) {
        qkv_proto_counters_t *c = &self->by_proto[p];
        qkv_proto_metrics_t *o = &m->by_proto[p];
        o->writes = atomic_load(&c->writes);
        o->commits = atomic_load(&c->commits);
        o->timeouts = atomic_load(&c->timeouts);
        o->bad_requests = atomic_load(&c->bad_requests);
        for (int b = 0; b <= QKV_LATENCY_BUCKETS; b++) {
            o->latency_le[b] = atomic_load(&c->latency_le[b]);
            o->latency_count += o->latency_le[b];
        }
        o->latency_sum_s = (double)atomic_load(&c->latency_sum_us) / 1e6;
    }
    m->malformed_frames = atomic_load(&self->malformed);
    m->frames_sent = atomic_load(&self->frames_sent);
    m->frames_received = atomic_load(&self->frames_received);
    m->entries_sent = atomic_load(&self->entries_sent);
    m->sessions = atomic_load(&self->sessions);
    m->session_records = atomic_load(&self->session_records);
    m->client_disconnects = atomic_load(&self->client_disconnects);
    if (self->curve) {
        m->curve_denied_repl = qkv_curve_denied_repl(self->curve);
        m->curve_denied_client = qkv_curve_denied_client(self->curve);
    }
    m->repl_forged = atomic_load(&self->repl_forged);
    m->client_forbidden = atomic_load(&self->client_forbidden);
    m->overloaded = atomic_load(&self->overloaded);
    m->memory_full = atomic_load(&self->memory_full);
    m->client_port_closed = atomic_load(&self->client_port_closed);
    m->repl_port_closed = atomic_load(&self->repl_port_closed);
}

void qkv_node_count_bad_request(qkv_node_t *self, qkv_proto_t proto) {
    atomic_fetch_add(&self->by_proto[proto].bad_requests, 1);
}

const qkv_config_t *qkv_node_config(const qkv_node_t *self) {
    return &self->config;
}

qkv_store_t *qkv_node_store(qkv_node_t *self) {
    return self->store;
}

const qkv_sockopt_curve_t *qkv_node_curve(const qkv_node_t *node) {
    return node->curve ? &node->curve_keys : NULL;
}

/*  =====================================================================
    Life cycle */

static int s_copy_config(qkv_config_t *dst, const qkv_config_t *src) {
    *dst = *src;
    for (size_t i = 0; i < src->follower_count; i++)
        dst->followers[i] = NULL;
    dst->peers = NULL;
    if (src->peers) {
        dst->peers = malloc(src->peer_count * sizeof(*dst->peers));
        if (!dst->peers)
            return -1;
        memcpy(dst->peers, src->peers, src->peer_count * sizeof(*dst->peers));
    }
    for (size_t i = 0; i < src->follower_count; i++)
        if (!(dst->followers[i] = strdup(src->followers[i])))
            return -1;
    return 0;
}

qkv_node_t *qkv_node_new(const qkv_config_t *cfg, char *err, size_t err_size) {
    qkv_node_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    atomic_store(&self->role, cfg->role);
    atomic_store(&self->leader_peer, -1);
    atomic_store(&self->transfer_to, -1);
    pthread_mutex_init(&self->inbox_mutex, NULL);
    pthread_mutex_init(&self->pool_mutex, NULL);
    pthread_mutex_init(&self->error_mutex, NULL);
    pthread_mutex_init(&self->applied_mutex, NULL);
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->applied_cond, &cattr);
    pthread_condattr_destroy(&cattr);
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->store = qkv_store_new();
    if (s_copy_config(&self->config, cfg) != 0 || !self->store ||
        self->wake_fd < 0) {
        snprintf(err, err_size, "out of memory or file descriptors");
        qkv_node_destroy(&self);
        return NULL;
    }
    self->client_frame_max =
        QKV_CLIENT_FRAME_BASE + 2 * (cfg->max_key_bytes + cfg->max_value_bytes);
    if (cfg->curve) { /* the ZAP handler runs before any socket binds */
        self->curve = qkv_curve_new(&self->config, err, err_size);
        if (!self->curve) {
            qkv_node_destroy(&self);
            return NULL;
        }
        self->curve_keys.public_key = qkv_curve_public(self->curve);
        self->curve_keys.secret_key = qkv_curve_secret(self->curve);
    }
    self->actor = zactor_new(qkv_actor_run, self);
    if (!self->actor || self->start_error[0]) {
        snprintf(err, err_size, "%s",
                 self->start_error[0] ? self->start_error
                                      : "cannot start the replication actor");
        qkv_node_destroy(&self);
        return NULL;
    }
    return self;
}

void qkv_node_stop(qkv_node_t *self) {
    zactor_destroy(&self->actor); /* answers and releases every waiter */
}

void qkv_node_destroy(qkv_node_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_node_t *self = *self_p;
    qkv_node_stop(self);
    qkv_curve_destroy(&self->curve);
    for (size_t i = 0; i < self->all_count; i++) {
        qkv_waiter_t *w = self->all[i];
        free(w->entry);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mutex);
        free(w);
    }
    free(self->all);
    qkv_store_destroy(&self->store);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    pthread_mutex_destroy(&self->inbox_mutex);
    pthread_mutex_destroy(&self->pool_mutex);
    pthread_mutex_destroy(&self->error_mutex);
    pthread_mutex_destroy(&self->applied_mutex);
    pthread_cond_destroy(&self->applied_cond);
    qkv_config_clear(&self->config);
    free(self);
    *self_p = NULL;
}
