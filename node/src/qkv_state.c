/*  qkv_state.c - the state machine: store + sessions, applied in log
    order (qkv_state.h). Entries are applied under one hold of the store's
    write lock per call, so readers see whole batches.
*/
#include "qkv_state.h"

#include <stdlib.h>

struct qkv_state_t {
    qkv_store_t *store;       /* not owned */
    qkv_sessions_t *sessions; /* owned */
};

qkv_state_t *qkv_state_new(qkv_store_t *store, size_t window, uint64_t ttl_ms) {
    qkv_state_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->store = store;
    self->sessions = qkv_sessions_new(window, ttl_ms);
    if (!self->sessions)
        qkv_state_destroy(&self);
    return self;
}

void qkv_state_destroy(qkv_state_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_sessions_destroy(&(*self_p)->sessions);
    free(*self_p);
    *self_p = NULL;
}

uint64_t qkv_state_applied_index(const qkv_state_t *self) {
    return qkv_store_applied_index(self->store);
}

const qkv_sessions_t *qkv_state_sessions(const qkv_state_t *self) {
    return self->sessions;
}

void qkv_state_clear(qkv_state_t *self) {
    qkv_store_clear(self->store);
    qkv_sessions_clear(self->sessions);
}

/* Applies one entry with the store's write lock held. Returns 0 or -1
   (out of memory: nothing changed). */
static int s_apply_one(qkv_state_t *self, const qkv_entry_t *e,
                       qkv_outcome_t *out) {
    out->index = out->answer_index = e->index;
    out->op = e->op;
    out->kind = QKV_APPLIED;
    out->result = 0;
    bool tagged = e->client_id != 0;
    uint64_t hash = 0;
    if (tagged) {
        hash = qkv_entry_hash(e);
        const qkv_session_rec_t *rec = NULL;
        qkv_session_verdict_t v = qkv_sessions_check(
            self->sessions, e->client_id, e->client_seq, hash, &rec);
        if (v != QKV_SESSION_NEW) {
            out->kind = v == QKV_SESSION_RETRY      ? QKV_APPLIED_RETRY
                        : v == QKV_SESSION_CONFLICT ? QKV_APPLIED_CONFLICT
                                                    : QKV_APPLIED_EXPIRED;
            if (rec) {
                out->answer_index = rec->index;
                out->result = rec->result;
            }
            qkv_store_skip_locked(self->store, e->index);
            qkv_sessions_tick(self->sessions, e->time_ms);
            return 0;
        }
    }
    /* Room for the record first: once the store changed, recording it
       must not fail, or a retry would apply the write twice. */
    if (tagged &&
        qkv_sessions_reserve(self->sessions, e->client_id, e->client_seq) != 0)
        return -1;
    if (qkv_store_apply_locked(self->store, e, &out->result) != 0)
        return -1;
    if (tagged)
        qkv_sessions_record(self->sessions, e->client_id, e->client_seq, hash,
                            e->index, out->result, e->time_ms);
    qkv_sessions_tick(self->sessions, e->time_ms);
    return 0;
}

size_t qkv_state_apply(qkv_state_t *self, const qkv_log_t *log, uint64_t last,
                       qkv_outcome_t *outcomes, size_t max) {
    uint64_t next = qkv_store_applied_index(self->store) + 1;
    size_t done = 0;
    qkv_store_write_begin(self->store);
    while (done < max && next <= last) {
        const qkv_entry_t *e = qkv_log_get(log, next);
        if (!e || s_apply_one(self, e, &outcomes[done]) != 0)
            break;
        done++;
        next++;
    }
    qkv_store_write_end(self->store);
    return done;
}

int qkv_state_snapshot(qkv_state_t *self, qkv_snap_meta_t *meta,
                       qkv_buf_t *out) {
    meta->index = qkv_store_applied_index(self->store);
    return qkv_snap_encode(self->store, self->sessions, meta, out);
}

int qkv_state_install(qkv_state_t *self, const void *image, size_t size,
                      char *why, size_t why_size) {
    if (qkv_snap_apply(image, size, self->store, self->sessions, why,
                       why_size) == 0)
        return 0;
    qkv_state_clear(self);
    return -1;
}

int qkv_state_load(qkv_state_t *self, const char *dir, qkv_snap_meta_t *meta,
                   uint64_t *bytes, char *err, size_t err_size) {
    return qkv_snap_load_newest(dir, self->store, self->sessions, meta, bytes,
                                err, err_size);
}

bool qkv_state_save(qkv_state_t *self, qkv_snap_saver_t *saver,
                    qkv_snap_meta_t *meta) {
    meta->index = qkv_store_applied_index(self->store);
    return qkv_snap_saver_fork(saver, self->store, self->sessions, meta);
}
