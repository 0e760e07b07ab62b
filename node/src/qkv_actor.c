/*  qkv_actor.c - the replication actor: the one thread that owns every
    socket, the timer and the state machine of a node, and wires them to
    the replication core.

    Design
    ------
    The rules of replication live in the core (qkv_core.c), which does no
    I/O; the door (qkv_door.c) is where every write enters; the state
    machine (qkv_state.c) applies committed entries to the store and the
    client sessions. This file is the loop around them. Each turn:

    1. Wait (qkv_wait: zmq_poll's work with half its system calls) for
       the pipe, the timer (a timerfd: a poll timeout has only
       millisecond resolution, simulated delays need better), the client
       ROUTER, the inbox of REST writes (an eventfd) and the replication
       sockets.
    2. Events: client frames (reads answered, writes to the door); REST
       writes from the inbox to the door; ACKs (leader) or APPENDs
       (follower) to the core.
    3. The log in memory is all there is to make durable: report it so.
    4. Ask the core what to do (qkv_core_ready): encode and send its
       messages; apply what it says is committed, in chunks, under the
       store's write lock, and hand the outcomes to the door, which answers
       the writers.
    5. Answer what passed its deadline; send the open answer frames;
       publish status for other threads.

    Nothing blocks and nothing sleeps but qkv_wait. The leader's whole log
    stays in memory; a follower keeps only what it has not applied yet.
*/
#include "qkv_clients.h"
#include "qkv_core.h"
#include "qkv_door.h"
#include "qkv_hash.h"
#include "qkv_node_priv.h"
#include "qkv_peers.h"
#include "qkv_snap.h"
#include "qkv_state.h"
#include "qkv_wait.h"
#include "qkv_wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

_Static_assert(QKV_MAX_FOLLOWERS <= QKV_CORE_MAX_PEERS,
               "the core holds every follower FOLLOWERS may name");

#define S_BATCH_BYTES (1u << 20)   /* entry bytes per APPEND */
#define S_WINDOW_BYTES (16u << 20) /* entry bytes in flight per follower */
#define S_ACK_FRAME_MAX 256        /* an ACK is about 40 bytes */
#define S_APPLY_CHUNK 256          /* entries applied per store lock */
#define S_ACK_REPEAT_US 10000      /* an identical ACK at most this often */
#define S_FD_RESERVE 32       /* free descriptors for the node's next files */
#define S_READS_PER_TURN 1024 /* replication frames read per turn */
#define S_ENCODINGS 4         /* APPEND frames kept to share per turn */
/* largest APPEND: a full batch plus one entry of the largest legal size */
#define S_FRAME_MAX ((size_t)S_BATCH_BYTES + (1u << 20) + (64u << 20) + 4096)

/* An APPEND frame encoded this turn, for every follower it fits. */
typedef struct {
    bool valid; /* encoded this turn */
    uint64_t prev_index, prev_term, commit_index, first, last;
    qkv_encoder_t *encoder; /* holds the frame */
} s_encoding_t;

typedef struct {
    qkv_node_t *node;        /* the node we serve */
    const qkv_config_t *cfg; /* its settings */
    zsock_t *pipe;           /* actor pipe */
    qkv_core_t *core;        /* the rules */
    qkv_state_t *state;      /* store + sessions */
    qkv_door_t *door;        /* where writes enter */
    qkv_clients_t *clients;  /* the zmq-native endpoint */
    qkv_peers_t *peers;      /* replication links */
    qkv_wal_t *wal;          /* the write-ahead log; NULL: memory only */
    qkv_snap_saver_t *saver; /* writes snapshot files; NULL: memory only */
    uint64_t snap_index;     /* the newest snapshot (memory only: the
                                index the log was last compacted to) */
    uint64_t snap_every;     /* SNAPSHOT_ENTRIES with this node's jitter */
    uint64_t snap_bytes;     /* SNAPSHOT_LOG_BYTES with this node's jitter */
    int64_t snap_retry_us;   /* no snapshot before (one failed) */
    uint64_t compact_to;     /* the log in memory goes up to here */
    /* leader: snapshots on their way to followers behind the log */
    qkv_buf_t xfer_image;                    /* the image they get */
    qkv_snap_meta_t xfer_meta;               /* its meta */
    uint64_t xfer_offset[QKV_MAX_FOLLOWERS]; /* next byte per follower */
    bool xfer_active[QKV_MAX_FOLLOWERS];     /* sending */
    bool xfer_wanted[QKV_MAX_FOLLOWERS];     /* waiting for the image */
    bool xfer_loading;                       /* the saver reads it */
    qkv_encoder_t *xfer_encoder;             /* chunk frames */
    /* follower: a snapshot coming in */
    qkv_buf_t recv_image;   /* the chunks so far */
    uint64_t recv_index;    /* its index */
    bool install_saving;    /* an installed snapshot is not durable yet:
                               the log is not written until it is */
    int lock_fd;            /* holds the data directory's LOCK */
    bool no_space;          /* the log cannot be written */
    char link_error[256];   /* a leader or peer it cannot follow; "" */
    char shown_error[256];  /* the error /health shows now */
    qkv_encoder_t *encoder; /* reused for every replication frame */
    qkv_decoder_t *decoder; /* reused for every replication frame */
    int timer_fd;           /* armed for the next timer */
    int64_t timer_due;      /* ... which is then; 0 disarmed */
    int64_t peers_due;      /* next held frame due; 0 none */
    qkv_fd_budget_t fds;    /* descriptors kept free (ZeroMQ ports) */
    char leader_endpoint[QKV_MAX_ENDPOINT + 1]; /* where clients go to
                                                   write; "" unknown */
    qkv_outcome_t outcomes[S_APPLY_CHUNK];
    s_encoding_t encodings[S_ENCODINGS]; /* followers in step share one */
    size_t next_encoding;                /* the slot to use next */
    /* PEERS: elections */
    bool elections;       /* on */
    qkv_core_role_t role; /* the core's role after the last turn */
    int leader;           /* ... and whom it followed */
} s_actor_t;

/*  =====================================================================
    The door's hooks */

static void s_answer(void *ctx, const qkv_origin_t *origin,
                     const qkv_write_result_t *result) {
    s_actor_t *self = ctx;
    if (origin->proto == QKV_PROTO_REST)
        qkv_waiter_answer(self->node, origin->waiter, result);
    else
        qkv_clients_answer(self->clients, origin, result);
}

static void s_numbered(void *ctx, const qkv_origin_t *origin, uint64_t index) {
    (void)ctx;
    if (origin->proto == QKV_PROTO_REST)
        qkv_waiter_numbered(origin->waiter, index);
}

/*  =====================================================================
    Events */

/* Hands every REST write in the inbox to the door. */
static void s_take_inbox(s_actor_t *self, int64_t now) {
    qkv_waiter_t *w = qkv_node_inbox_take(self->node);
    while (w) {
        qkv_waiter_t *next = w->next;
        if (qkv_waiter_take(w)) {
            qkv_origin_t origin = {QKV_PROTO_REST, w->entry->op, 0, 0, w,
                                   w->start_us};
            qkv_door_write(self->door, &w->entry, &origin, now);
        } else {
            qkv_waiter_release(self->node, w); /* its worker gave up */
        }
        w = next;
    }
}

static void s_count(_Atomic uint64_t *counter, uint64_t n) {
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

/* Decodes one replication frame from peer and steps the core with it. */
static void s_on_snapshot(s_actor_t *self, const qkv_msg_t *m);
static void s_on_append(s_actor_t *self, size_t peer, const qkv_msg_t *m,
                        int64_t now);

/* With PEERS any message may come from any peer: the core sorts out
   which it expects in the role it has now. */
static void s_on_peer_frame(s_actor_t *self, size_t peer, const qkv_msg_t *m,
                            int64_t now) {
    int rc = 0;
    if (m->cluster_hash && m->cluster_hash != self->cfg->cluster_hash) {
        snprintf(self->link_error, sizeof(self->link_error),
                 "node %s runs with other PEERS, WRITE_QUORUM or FSYNC than "
                 "this node (all must be the same): its messages are "
                 "refused",
                 qkv_config_peer(self->cfg, peer)->id);
        s_count(&self->node->malformed, 1);
        return;
    }
    switch (m->type) {
    case QKV_MSG_APPEND:
        s_on_append(self, peer, m, now);
        break;
    case QKV_MSG_ACK:
        rc = qkv_core_step_ack(self->core, peer, m, now);
        break;
    case QKV_MSG_SNAPSHOT:
        if (qkv_core_heard(self->core, peer, m->term, now))
            s_on_snapshot(self, m);
        break;
    default:
        rc = qkv_core_step_vote(self->core, peer, m, now);
    }
    if (rc != 0)
        s_count(&self->node->malformed, 1);
}

static void s_on_frame(s_actor_t *self, size_t peer, zmq_msg_t *frame,
                       int64_t now) {
    s_count(&self->node->frames_received, 1);
    const qkv_msg_t *m;
    int rc = qkv_decoder_decode(self->decoder, zmq_msg_data(frame),
                                zmq_msg_size(frame), &m);
    if (rc == QKV_NEWER) {
        snprintf(self->link_error, sizeof(self->link_error),
                 "a peer speaks replication protocol version %llu; this node "
                 "speaks %d: upgrade it",
                 (unsigned long long)m->version, QKV_REPL_VERSION);
        s_count(&self->node->malformed, 1);
        return;
    }
    if (rc == 0 && self->elections) {
        s_on_peer_frame(self, peer, m, now);
        return;
    }
    bool leader = qkv_core_is_leader(self->core);
    bool expected = rc == 0 && (leader ? m->type == QKV_MSG_ACK
                                       : m->type == QKV_MSG_APPEND ||
                                             m->type == QKV_MSG_SNAPSHOT);
    if (!expected) {
        s_count(&self->node->malformed, 1);
        return;
    }
    if (m->type == QKV_MSG_SNAPSHOT) {
        qkv_peers_keep_sender(self->peers);
        s_on_snapshot(self, m);
        return;
    }
    if (leader) {
        if (qkv_core_step_ack(self->core, peer, m, now) != 0)
            s_count(&self->node->malformed, 1);
        return;
    }
    qkv_peers_keep_sender(self->peers);
    s_on_append(self, 0, m, now);
}

/* An APPEND from the leader, peer. */
static void s_on_append(s_actor_t *self, size_t peer, const qkv_msg_t *m,
                        int64_t now) {
    if (m->has_fsync && m->fsync != self->cfg->fsync) {
        snprintf(self->link_error, sizeof(self->link_error),
                 "the leader runs FSYNC=%s and this node FSYNC=%s: refusing "
                 "to follow (one value for the cluster)",
                 qkv_fsync_name(m->fsync), qkv_fsync_name(self->cfg->fsync));
        return;
    }
    self->link_error[0] = '\0'; /* a leader this node can follow */
    if (m->commit_index > atomic_load(&self->node->leader_commit))
        atomic_store(&self->node->leader_commit, m->commit_index);
    if (m->leader_len &&
        (strlen(self->leader_endpoint) != m->leader_len ||
         memcmp(self->leader_endpoint, m->leader, m->leader_len) != 0)) {
        memcpy(self->leader_endpoint, m->leader, m->leader_len);
        self->leader_endpoint[m->leader_len] = '\0';
    }
    uint64_t cluster = qkv_core_cluster_id(self->core);
    qkv_core_step_append(self->core, peer, m, now); /* a refusal: its error */
    if (qkv_core_cluster_id(self->core) != cluster) {
        if (cluster)
            qkv_info("new cluster id %016llx: dropping the state of %016llx",
                     (unsigned long long)qkv_core_cluster_id(self->core),
                     (unsigned long long)cluster);
        else
            qkv_info("following cluster id %016llx",
                     (unsigned long long)qkv_core_cluster_id(self->core));
    }
}

/*  =====================================================================
    Snapshots

    Every node takes one when SNAPSHOT_ENTRIES entries were applied since
    the last, or the log on disk passed SNAPSHOT_LOG_BYTES (each with a
    jitter of +-10% per node): the actor forks, and the child writes the
    state machine as it was at the fork (copy-on-write) while the node
    goes on; the saver thread waits for it, and once the file is durable
    the log up to it goes, on disk and in memory. Memory only:
    the log in memory is compacted, nothing written.

    A follower whose next entry the leader no longer holds gets the state
    machine as it is now, encoded once for every follower that needs it,
    in chunks of S_CHUNK_BYTES, a few per turn so that writes and the other
    followers go on; then the log after it. */

#define S_CHUNK_BYTES (1u << 20)
#define S_SNAP_RETRY_US 1000000 /* after a snapshot failed */
#define S_COMPACT_PER_TURN 8192 /* log entries freed per turn (~4 ms) */
#define S_XFER_HOLD_US 10000000 /* the log kept for a snapshot on its way */
#define S_CHUNKS_PER_TURN 4

/* Frees a chunk of the log in memory that a snapshot holds: a million
   entries freed at once would stop the node for half a second. */
static void s_compact(s_actor_t *self, int64_t now) {
    uint64_t first = qkv_log_first_index(qkv_core_log(self->core));
    uint64_t to = self->compact_to;
    /* a follower getting a snapshot needs the log right after it; held
       for S_XFER_HOLD_US at most, so a follower that is gone does not
       make the log grow without bound */
    for (size_t p = 0; p < self->cfg->follower_count && self->xfer_meta.index;
         p++) {
        qkv_core_peer_t peer;
        qkv_core_peer(self->core, p, &peer);
        if (peer.snapshot && now - peer.snapshot_us < S_XFER_HOLD_US &&
            self->xfer_meta.index < to)
            to = self->xfer_meta.index;
    }
    if (to < first)
        return;
    if (to - first >= S_COMPACT_PER_TURN)
        to = first + S_COMPACT_PER_TURN - 1;
    qkv_core_compact(self->core, to);
}

/* Starts a snapshot when one is due. */
static void s_maybe_snapshot(s_actor_t *self) {
    uint64_t applied = qkv_state_applied_index(self->state);
    if (applied <= self->snap_index)
        return;
    bool due = applied - self->snap_index >= self->snap_every;
    if (self->wal && !due)
        due = qkv_wal_disk_bytes(self->wal) >= self->snap_bytes;
    if (!due)
        return;
    if (!self->wal) {
        self->compact_to = applied; /* freed a chunk per turn */
        self->snap_index = applied;
        atomic_store(&self->node->snapshot_index, applied);
        return;
    }
    if (self->install_saving || qkv_snap_saver_busy(self->saver) ||
        qkv_now_us() < self->snap_retry_us)
        return;
    qkv_snap_meta_t meta = {qkv_core_cluster_id(self->core), 0,
                            qkv_log_term_at(qkv_core_log(self->core), applied),
                            0};
    if (!qkv_state_save(self->state, self->saver, &meta)) {
        qkv_warn("cannot start a snapshot at %llu: %s",
                 (unsigned long long)applied, strerror(errno));
        self->snap_retry_us = qkv_now_us() + S_SNAP_RETRY_US;
        return;
    }
    qkv_wal_roll(self->wal); /* so that the log before it can go */
}

static void s_image_loaded(s_actor_t *self);

/* The saver finished: the log up to its snapshot goes. */
static void s_snapshot_saved(s_actor_t *self) {
    s_image_loaded(self);
    uint64_t bytes;
    char why[256];
    uint64_t index = qkv_snap_saver_done(self->saver, &bytes, why, sizeof(why));
    if (!index) {
        if (why[0]) {
            qkv_warn("snapshot not saved: %s", why);
            self->snap_retry_us = qkv_now_us() + S_SNAP_RETRY_US;
        }
        return;
    }
    self->snap_index = index;
    self->install_saving = false;
    qkv_wal_compact(self->wal, index);
    self->compact_to = index; /* the log in memory: a chunk per turn */
    qkv_node_t *node = self->node;
    atomic_store(&node->snapshot_index, index);
    atomic_store(&node->snapshot_bytes, bytes);
    atomic_fetch_add(&node->snapshots, 1);
}

/* Leader: starts sending the image to peer. */
static void s_send_image(s_actor_t *self, size_t peer) {
    qkv_info("follower%zu is behind the log: sending it a snapshot at %llu "
             "(%zu bytes)",
             peer + 1, (unsigned long long)self->xfer_meta.index,
             self->xfer_image.size);
    self->xfer_active[peer] = true;
    self->xfer_wanted[peer] = false;
    self->xfer_offset[peer] = 0;
    atomic_fetch_add(&self->node->snapshots_sent, 1);
}

/* Leader: follower peer needs a snapshot. With a data directory it gets
   the newest snapshot file, read by the saver thread (the log in memory
   goes on right after it); memory only, the state as applied now,
   encoded here. */
static void s_start_transfer(s_actor_t *self, size_t peer) {
    const qkv_log_t *log = qkv_core_log(self->core);
    if (self->xfer_image.size &&
        self->xfer_meta.index + 1 >= qkv_log_first_index(log)) {
        s_send_image(self, peer);
        return;
    }
    if (self->saver && self->snap_index) {
        self->xfer_wanted[peer] = true;
        if (!self->xfer_loading) {
            qkv_snap_saver_load(self->saver, self->snap_index);
            self->xfer_loading = true;
        }
        return;
    }
    uint64_t applied = qkv_state_applied_index(self->state);
    self->xfer_meta = (qkv_snap_meta_t){qkv_core_cluster_id(self->core), 0,
                                        qkv_log_term_at(log, applied), 0};
    if (qkv_state_snapshot(self->state, &self->xfer_meta, &self->xfer_image) !=
        0) {
        qkv_buf_free(&self->xfer_image);
        return; /* the core asks again */
    }
    memset(self->xfer_offset, 0, sizeof(self->xfer_offset));
    s_send_image(self, peer);
}

/* Leader: the saver read the snapshot file followers wait for. */
static void s_image_loaded(s_actor_t *self) {
    if (!self->xfer_loading)
        return;
    qkv_buf_t image = {0};
    int rc = qkv_snap_saver_loaded(self->saver, &image);
    if (rc == 0)
        return;
    self->xfer_loading = false;
    if (rc < 0) {
        /* a newer snapshot replaced the file: read that one */
        qkv_snap_saver_load(self->saver, self->snap_index);
        self->xfer_loading = true;
        return;
    }
    char why[256];
    qkv_snap_meta_t meta;
    if (qkv_snap_check(image.data, image.size, &meta, why, sizeof(why)) != 0) {
        qkv_warn("the snapshot for a follower is damaged: %s", why);
        qkv_buf_free(&image);
        return; /* the core asks again */
    }
    qkv_buf_free(&self->xfer_image);
    self->xfer_image = image;
    self->xfer_meta = meta;
    for (size_t p = 0; p < self->cfg->follower_count; p++)
        if (self->xfer_wanted[p] || self->xfer_active[p])
            s_send_image(self, p); /* (again, with this image) */
}

/* Leader: sends the next chunks of every transfer. */
static void s_pump_transfers(s_actor_t *self, int64_t now) {
    bool any = false;
    for (size_t p = 0; p < self->cfg->follower_count; p++) {
        for (int n = 0; self->xfer_active[p] && n < S_CHUNKS_PER_TURN; n++) {
            uint64_t off = self->xfer_offset[p], size = self->xfer_image.size;
            size_t len = size - off > S_CHUNK_BYTES ? S_CHUNK_BYTES
                                                    : (size_t)(size - off);
            qkv_snapshot_chunk_t c = {self->xfer_meta.cluster_id,
                                      qkv_core_term(self->core),
                                      self->xfer_meta.index,
                                      self->xfer_meta.term,
                                      off,
                                      size,
                                      self->xfer_image.data + off,
                                      len};
            qkv_encoder_snapshot(self->xfer_encoder, &c);
            size_t fsize;
            const void *frame = qkv_encoder_data(self->xfer_encoder, &fsize);
            if (!frame ||
                qkv_peers_send(self->peers, p, frame, fsize, true, now))
                break; /* the link is full: the rest next turn */
            s_count(&self->node->frames_sent, 1);
            self->xfer_offset[p] += len;
            if (self->xfer_offset[p] == size)
                self->xfer_active[p] = false; /* all sent: its ACK follows */
        }
        any = any || self->xfer_active[p];
    }
    if (!any && self->xfer_image.size)
        qkv_buf_free(&self->xfer_image); /* made again when needed */
}

/* Follower: one chunk of a snapshot from the leader. */
static void s_on_snapshot(s_actor_t *self, const qkv_msg_t *m) {
    uint64_t cluster = qkv_core_cluster_id(self->core);
    if (m->cluster_id != cluster && cluster && !self->cfg->drop_foreign_data &&
        self->wal)
        return; /* another cluster's: its APPENDs say so in /health */
    if (m->term < qkv_core_term(self->core))
        return; /* an old leader's */
    qkv_buf_t *r = &self->recv_image;
    if (m->offset == 0) {
        r->size = 0;
        self->recv_index = m->snap_index;
        atomic_store(&self->node->synced, false);
        qkv_info("receiving a snapshot at %llu (%llu bytes)",
                 (unsigned long long)m->snap_index,
                 (unsigned long long)m->total);
    } else if (m->offset != r->size || m->snap_index != self->recv_index) {
        return; /* a chunk of a transfer that started over: wait for it */
    }
    if (qkv_buf_append(r, m->chunk, m->chunk_len) != 0) {
        qkv_buf_free(r);
        return;
    }
    if (r->size < m->total)
        return;
    char why[256];
    qkv_snap_meta_t meta;
    if (qkv_snap_check(r->data, r->size, &meta, why, sizeof(why)) != 0 ||
        meta.index != m->snap_index || meta.cluster_id != m->cluster_id ||
        qkv_state_install(self->state, r->data, r->size, why, sizeof(why))) {
        qkv_warn("snapshot from the leader refused: %s", why);
        qkv_buf_free(r);
        return;
    }
    qkv_core_install(self->core, meta.cluster_id, m->term, meta.index,
                     meta.term);
    qkv_node_applied_advanced(self->node);
    atomic_fetch_add(&self->node->snapshots_installed, 1);
    qkv_info("installed the leader's snapshot at %llu: %llu keys",
             (unsigned long long)meta.index, (unsigned long long)meta.keys);
    if (self->wal) {
        /* the log goes on after it once the snapshot is durable */
        qkv_wal_restart_at(self->wal, meta.index);
        self->install_saving = true;
        self->snap_index = 0;
    } else {
        self->snap_index = meta.index;
        atomic_store(&self->node->snapshot_index, meta.index);
        qkv_buf_free(r);
    }
}

/* Follower: saves an installed snapshot as soon as the saver is free. */
static void s_save_installed(s_actor_t *self) {
    if (!self->install_saving || qkv_snap_saver_busy(self->saver))
        return;
    if (!self->recv_image.size) {
        /* the save failed: the state as applied now will do (every entry
           it holds is committed) */
        qkv_snap_meta_t meta = {
            qkv_core_cluster_id(self->core), 0,
            qkv_log_term_at(qkv_core_log(self->core),
                            qkv_state_applied_index(self->state)),
            0};
        if (qkv_state_snapshot(self->state, &meta, &self->recv_image) != 0)
            return;
        self->recv_index = meta.index;
    }

    if (!qkv_snap_saver_save(self->saver, &self->recv_image, self->recv_index))
        return;
    qkv_buf_free(&self->recv_image);
}

/* Reads what waits on replication socket item (bounded). Returns true
   when it read all there was. */
static bool s_read_peers(s_actor_t *self, size_t item, int64_t now) {
    bool drained = false;
    for (int n = 0; n < S_READS_PER_TURN; n++) {
        size_t peer;
        zmq_msg_t frame;
        int rc = qkv_peers_recv(self->peers, item, &peer, &frame);
        if (rc < 0) {
            drained = true;
            break;
        }
        if (rc == 1)
            s_on_frame(self, peer, &frame, now);
        else if (rc == 0)
            s_count(&self->node->malformed, 1);
        zmq_msg_close(&frame);
    }
    atomic_store_explicit(&self->node->repl_forged,
                          qkv_peers_forged(self->peers), memory_order_relaxed);
    atomic_store_explicit(&self->node->repl_port_closed,
                          qkv_peers_closed(self->peers), memory_order_relaxed);
    return drained;
}

/*  =====================================================================
    The end of a turn */

/* The frame of an APPEND: one encoded this turn with the same header
   and entries (followers in step get the same APPEND), or a new one. */
static const void *s_append_frame(s_actor_t *self, const qkv_core_msg_t *m,
                                  size_t *size) {
    for (size_t i = 0; i < S_ENCODINGS; i++) {
        s_encoding_t *c = &self->encodings[i];
        if (c->valid && c->prev_index == m->prev_index &&
            c->prev_term == m->prev_term &&
            c->commit_index == m->commit_index && c->first == m->first &&
            c->last == m->last)
            return qkv_encoder_data(c->encoder, size);
    }
    s_encoding_t *c = &self->encodings[self->next_encoding];
    self->next_encoding = (self->next_encoding + 1) % S_ENCODINGS;
    *c = (s_encoding_t){true,     m->prev_index, m->prev_term, m->commit_index,
                        m->first, m->last,       c->encoder};
    const qkv_log_t *log = qkv_core_log(self->core);
    qkv_append_head_t head = {m->cluster_id,
                              m->term,
                              m->prev_index,
                              m->prev_term,
                              m->commit_index,
                              self->leader_endpoint,
                              strlen(self->leader_endpoint),
                              (uint8_t)self->cfg->fsync,
                              m->sent_us,
                              self->cfg->cluster_hash};
    uint64_t entries = m->last >= m->first ? m->last - m->first + 1 : 0;
    qkv_encoder_append_begin(c->encoder, &head, (size_t)entries);
    for (uint64_t k = m->first; k <= m->last; k++)
        qkv_encoder_add_entry(c->encoder, qkv_log_get(log, k));
    return qkv_encoder_data(c->encoder, size);
}

/* Encodes and sends the core's messages. */
static void s_send(s_actor_t *self, const qkv_core_ready_t *rd, int64_t now) {
    for (size_t i = 0; i < S_ENCODINGS; i++)
        self->encodings[i].valid = false; /* the log may have moved on */
    for (size_t i = 0; i < rd->msg_count; i++) {
        const qkv_core_msg_t *m = &rd->msgs[i];
        uint64_t entries = 0;
        size_t size;
        const void *data;
        if (m->type == QKV_MSG_SNAPSHOT) {
            s_start_transfer(self, m->peer);
            continue;
        }
        if (m->type == QKV_MSG_APPEND) {
            entries = m->last >= m->first ? m->last - m->first + 1 : 0;
            data = s_append_frame(self, m, &size);
        } else if (m->type == QKV_MSG_VOTE || m->type == QKV_MSG_VOTE_ACK) {
            qkv_vote_t v = {m->type,    m->cluster_id,           m->term,
                            m->pre,     m->last_index,           m->last_term,
                            m->granted, self->cfg->cluster_hash, m->transfer};
            qkv_encoder_vote(self->encoder, &v);
            data = qkv_encoder_data(self->encoder, &size);
            if (m->type == QKV_MSG_VOTE_ACK && m->granted && !m->pre)
                s_count(&self->node->votes_granted, 1);
        } else if (m->type == QKV_MSG_TIMEOUT_NOW) {
            qkv_encoder_timeout_now(self->encoder, m->cluster_id, m->term,
                                    self->cfg->cluster_hash);
            data = qkv_encoder_data(self->encoder, &size);
            qkv_info("handing over to %s",
                     qkv_config_peer(self->cfg, m->peer)->id);
        } else {
            qkv_ack_t ack = {m->cluster_id, m->term,      m->ok,     m->index,
                             m->hint_index, m->hint_term, m->echo_us};
            qkv_encoder_ack(self->encoder, &ack);
            data = qkv_encoder_data(self->encoder, &size);
        }
        bool delayed = m->type == QKV_MSG_APPEND; /* as links would */
        if (qkv_peers_send(self->peers, m->peer, data, size, delayed, now) !=
            0) {
            qkv_core_send_failed(self->core, m->peer, now);
            continue;
        }
        s_count(&self->node->frames_sent, 1);
        s_count(&self->node->entries_sent, entries);
    }
}

/* Applies committed entries up to target. */
static void s_apply(s_actor_t *self, uint64_t target, int64_t now) {
    uint64_t before = qkv_state_applied_index(self->state);
    uint64_t applied = before;
    while (applied < target) {
        size_t n = qkv_state_apply(self->state, qkv_core_log(self->core),
                                   target, self->outcomes, S_APPLY_CHUNK);
        if (n == 0) {
            char why[128];
            snprintf(why, sizeof(why),
                     "out of memory applying index %llu: not acknowledging",
                     (unsigned long long)applied + 1);
            qkv_core_fail(self->core, why);
            break;
        }
        applied += n;
        qkv_door_applied(self->door, self->outcomes, n, now);
        qkv_core_applied_to(self->core, applied);
    }
    if (applied > before) {
        qkv_node_applied_advanced(self->node);
        qkv_clients_applied(self->clients, applied);
    }
}

static void s_publish_wal(s_actor_t *self) {
    qkv_node_t *node = self->node;
    qkv_wal_stats_t ws;
    qkv_wal_stats(self->wal, &ws);
    atomic_store(&node->fsyncs, ws.fsyncs);
    atomic_store(&node->fsync_failures, ws.fsync_failures);
    atomic_store(&node->entries_synced, ws.entries_synced);
    atomic_store(&node->fsync_us, (uint64_t)(ws.fsync_seconds * 1e6));
    for (int i = 0; i < 8; i++)
        atomic_store(&node->fsync_le[i], ws.fsync_le[i]);
    atomic_store(&node->log_disk_bytes, ws.disk_bytes);
    atomic_store(&node->log_write_errors, ws.write_errors);
}

/* What /health shows as the node's error: the log's refusal to write,
   else a leader it cannot follow, else the core's refusal (another
   cluster, a conflict with a committed entry, out of memory); "" when
   healthy. Set on the node when it changes. */
static void s_publish_error(s_actor_t *self) {
    const char *why = self->wal ? qkv_wal_error(self->wal) : "";
    if (!why[0])
        why = self->link_error;
    if (!why[0])
        why = qkv_core_error(self->core);
    if (strcmp(why, self->shown_error) == 0)
        return;
    snprintf(self->shown_error, sizeof(self->shown_error), "%s", why);
    qkv_node_set_error(self->node, "%s", why);
}

static void s_publish(s_actor_t *self) {
    qkv_node_t *node = self->node;
    s_publish_error(self);
    if (self->elections) {
        atomic_store(&node->voter, qkv_core_voter(self->core));
        int64_t lease = qkv_core_lease_until(self->core);
        atomic_store(&node->lease_until_us, lease);
    }
    atomic_store(&node->durable_index, qkv_core_durable_index(self->core));
    atomic_store(&node->serving, qkv_core_serving(self->core));
    if (!atomic_load(&node->synced) && !qkv_core_is_leader(self->core)) {
        uint64_t commit = atomic_load(&node->leader_commit);
        if (commit && qkv_state_applied_index(self->state) >= commit)
            atomic_store(&node->synced, true);
    }
    if (self->wal)
        s_publish_wal(self);
    atomic_store(&node->cluster_id, qkv_core_cluster_id(self->core));
    atomic_store(&node->term, qkv_core_term(self->core));
    atomic_store(&node->last_index, qkv_core_last_index(self->core));
    atomic_store(&node->commit_index, qkv_core_commit_index(self->core));
    const qkv_sessions_t *sessions = qkv_state_sessions(self->state);
    atomic_store(&node->sessions, qkv_sessions_count(sessions));
    atomic_store(&node->session_records, qkv_sessions_records(sessions));
    for (size_t i = 0; i < self->cfg->follower_count; i++) {
        qkv_core_peer_t p;
        qkv_core_peer(self->core, i, &p);
        atomic_store(&node->followers[i].acked_index, p.match);
        atomic_store(&node->followers[i].last_ack_us, p.last_ack_us);
    }
}

/* Writes what the log gained this turn and reports what is durable: the
   writer thread reports fsyncs through qkv_wal_event_fd; under everysec
   and never what is written is durable. */
static void s_persist(s_actor_t *self, int64_t now) {
    if (!self->wal) {
        /* memory only: what the log holds is all it will hold */
        qkv_core_durable_to(self->core, qkv_core_last_index(self->core));
        return;
    }
    if (self->install_saving) {
        s_save_installed(self);
        return; /* nothing goes on disk after a snapshot not yet durable */
    }
    uint64_t dropped = qkv_core_take_truncation(self->core);
    if (dropped)
        qkv_wal_truncated(self->wal, dropped);
    const qkv_log_t *log = qkv_core_log(self->core);
    int rc = qkv_wal_write(self->wal, log, qkv_core_cluster_id(self->core),
                           qkv_core_term(self->core), now);
    if (self->cfg->fsync != QKV_FSYNC_ALWAYS)
        qkv_core_durable_to(self->core, qkv_wal_written(self->wal));
    bool no_space = rc != 0;
    if (no_space != self->no_space) {
        self->no_space = no_space;
        qkv_door_set_no_space(self->door, no_space);
    }
}

/* PEERS: the hard state (term, vote, cluster, rejoin) is durable before
   any message of the turn leaves, whatever FSYNC says: a vote forgotten
   in a crash could be given twice. Returns false when it could not be
   made durable: then nothing may be sent. */
static bool s_persist_hard(s_actor_t *self) {
    if (!self->wal)
        return true; /* memory only: a restart is an empty node */
    qkv_core_hard_t h;
    qkv_core_hard(self->core, &h);
    size_t self_index = self->cfg->self;
    uint32_t vote = 0;
    if (h.vote == QKV_CORE_SELF)
        vote = (uint32_t)self_index + 1;
    else if (h.vote >= QKV_CORE_PEER) {
        size_t slot = (size_t)(h.vote - QKV_CORE_PEER);
        vote = (uint32_t)(slot < self_index ? slot : slot + 1) + 1;
    }
    qkv_wal_vote_t v = {vote, 0, h.rejoin_term, h.rejoin_commit};
    qkv_wal_set_vote(self->wal, &v);
    char err[256];
    if (qkv_wal_persist_state(self->wal, qkv_core_log(self->core), h.cluster_id,
                              h.term, err, sizeof(err)) != 0) {
        qkv_warn("cannot make term %llu and its vote durable: %s; sending "
                 "nothing",
                 (unsigned long long)h.term, err);
        return false;
    }
    return true;
}

static const char *s_role_name(qkv_core_role_t role) {
    return role == QKV_CORE_LEADER          ? "leader"
           : role == QKV_CORE_CANDIDATE     ? "candidate"
           : role == QKV_CORE_PRE_CANDIDATE ? "pre-candidate"
                                            : "follower";
}

/* PEERS: the PEERS index of core peer value who (QKV_CORE_SELF or
   QKV_CORE_PEER + slot), or -1 for nobody. */
static int s_peer_index(const s_actor_t *self, int who) {
    size_t me = self->cfg->self;
    if (who == QKV_CORE_SELF)
        return (int)me;
    if (who < QKV_CORE_PEER)
        return -1;
    size_t slot = (size_t)(who - QKV_CORE_PEER);
    return (int)(slot < me ? slot : slot + 1);
}

/* PEERS: what changes with the role or the leader - the answer waiting
   writers get, the endpoint clients are sent to, what /health shows. */
static void s_role_changed(s_actor_t *self, int64_t now) {
    qkv_core_role_t role = qkv_core_role(self->core);
    int leader = qkv_core_leader(self->core);
    if (role == self->role && leader == self->leader)
        return;
    qkv_node_t *node = self->node;
    const qkv_config_t *cfg = self->cfg;
    bool was_leader = self->role == QKV_CORE_LEADER;
    if (was_leader && role != QKV_CORE_LEADER) {
        /* outcome unknown: a new leader may keep or drop what waits */
        qkv_door_step_down(self->door, now);
        for (size_t p = 0; p < cfg->follower_count; p++)
            self->xfer_active[p] = self->xfer_wanted[p] = false;
        atomic_fetch_add(&node->step_downs, 1);
        atomic_store(&node->serving, false);
    }
    int index = s_peer_index(self, leader);
    if (leader != self->leader && index >= 0) {
        atomic_store(&node->last_election_ms, qkv_wall_ms());
        if (role == QKV_CORE_LEADER)
            atomic_fetch_add(&node->elections_won, 1);
    }
    if (role == QKV_CORE_LEADER)
        qkv_info("leader of cluster %016llx, term %llu (%zu nodes, quorum %d)",
                 (unsigned long long)qkv_core_cluster_id(self->core),
                 (unsigned long long)qkv_core_term(self->core), cfg->peer_count,
                 cfg->write_quorum);
    else if (index >= 0)
        qkv_info("following %s in term %llu", cfg->peers[index].id,
                 (unsigned long long)qkv_core_term(self->core));
    else if (role != self->role)
        qkv_info("%s in term %llu%s", s_role_name(role),
                 (unsigned long long)qkv_core_term(self->core),
                 was_leader ? ": stepped down" : "");
    snprintf(self->leader_endpoint, sizeof(self->leader_endpoint), "%s",
             index >= 0 ? cfg->peers[index].client : "");
    atomic_store(&node->leader_peer, index);
    atomic_store(&node->role, role == QKV_CORE_LEADER     ? QKV_ROLE_LEADER
                              : role == QKV_CORE_FOLLOWER ? QKV_ROLE_FOLLOWER
                                                          : QKV_ROLE_CANDIDATE);
    self->role = role;
    self->leader = leader;
}

/* PEERS: a handover another thread asked for (qkv_node_transfer_leader),
   and how the last one ends. */
static void s_transfers(s_actor_t *self, int64_t now) {
    qkv_node_t *node = self->node;
    int index = atomic_exchange(&node->transfer_to, -1);
    if (index >= 0) {
        size_t me = self->cfg->self, p = (size_t)index;
        int rc = p == me
                     ? QKV_CORE_NOT_LEADER
                     : qkv_core_transfer(self->core, p < me ? p : p - 1, now);
        atomic_store(&node->transfer_state, rc == 0 ? QKV_TRANSFER_RUNNING
                                            : rc == QKV_CORE_BEHIND
                                                ? QKV_TRANSFER_BEHIND
                                                : QKV_TRANSFER_NOT_LEADER);
        if (rc == QKV_CORE_BEHIND)
            qkv_warn("handover to %s refused: it is not up to date",
                     self->cfg->peers[index].id);
    } else if (atomic_load(&node->transfer_state) == QKV_TRANSFER_RUNNING &&
               qkv_core_is_leader(self->core) &&
               !qkv_core_transferring(self->core)) {
        atomic_store(&node->transfer_state, QKV_TRANSFER_GAVE_UP);
    }
}

static void s_end_turn(s_actor_t *self, int64_t now) {
    if (self->elections)
        s_transfers(self, now);
    s_persist(self, now);
    qkv_core_ready_t rd;
    qkv_core_ready(self->core, now, &rd);
    if (rd.persist && self->elections && !s_persist_hard(self))
        rd.msg_count = 0; /* nothing leaves on a term not durable */
    if (self->elections)
        s_role_changed(self, now);
    if (rd.reset) {
        qkv_state_clear(self->state);
        self->snap_index = 0;
        atomic_store(&self->node->snapshot_index, 0);
        if (self->wal)
            qkv_snap_remove_all(self->cfg->data_dir);
    }
    s_send(self, &rd, now);
    s_pump_transfers(self, now);
    s_apply(self, rd.apply_to, now);
    s_compact(self, now);
    s_maybe_snapshot(self);

    if (!self->wal && !qkv_core_is_leader(self->core))
        qkv_core_compact(self->core, qkv_state_applied_index(self->state));
    uint64_t failed = qkv_peers_flush(self->peers, now, &self->peers_due);
    for (size_t i = 0; failed; i++, failed >>= 1)
        if (failed & 1)
            qkv_core_send_failed(self->core, i, now);
    qkv_clients_flush(self->clients);
    s_publish(self);
}

/* The wait's timeout for the next timer: 0 when one is due, else -1
   with the timerfd armed for it. */
static long s_arm_timer(s_actor_t *self, int64_t now) {
    int64_t due = qkv_core_next_due(self->core);
    int64_t more[] = {qkv_door_expire(self->door, now),
                      qkv_clients_expire(self->clients, now), self->peers_due,
                      self->wal ? qkv_wal_next_due(self->wal) : 0};

    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        if (more[i] && (!due || more[i] < due))
            due = more[i];
    qkv_clients_flush(self->clients); /* answers the expiries gave */
    if (due && due <= now)
        return 0;
    if (due == self->timer_due)
        return -1; /* armed for it already: a busy loop saves the call */
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (due) {
        its.it_value.tv_sec = due / 1000000;
        its.it_value.tv_nsec = (due % 1000000) * 1000;
    }
    timerfd_settime(self->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
    self->timer_due = due;
    return -1;
}

/*  =====================================================================
    Life cycle */

static uint64_t s_random_id(void) {
    uint64_t id = 0;
    while (!id)
        id = qkv_random64();
    return id;
}

/* mkdir -p path (mode 0750 for what it creates). */
static int s_mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

/* The failpoints of test builds (cmake -DQKV_FAILPOINTS=ON), from
   QKV_FAILPOINT: wal-hold keeps log records in user space until fsync (a
   kill -9 acts as a power loss); wal-stall holds them and never fsyncs (a
   disk that hangs). */
static void s_failpoints(qkv_wal_options_t *o) {
#ifdef QKV_FAILPOINTS
    const char *fp = getenv("QKV_FAILPOINT");
    o->stall = fp && strcmp(fp, "wal-stall") == 0;
    o->hold = o->stall || (fp && strcmp(fp, "wal-hold") == 0);
    if (o->hold)
        qkv_warn("failpoint %s: log records wait in memory%s; a kill -9 acts "
                 "as a power loss",
                 fp, o->stall ? " forever" : " until fsync");
#else
    (void)o;
#endif
}

/* Opens the data directory: creates it, takes its LOCK (one node per
   directory), loads the newest snapshot into the state machine and
   replays the write-ahead log after it into *log_p. */
static int s_open_data(s_actor_t *self, qkv_log_t **log_p, qkv_wal_replay_t *rp,
                       qkv_snap_meta_t *snap, char *err, size_t es) {
    const qkv_config_t *cfg = self->cfg;
    if (s_mkdirs(cfg->data_dir) != 0) {
        snprintf(err, es, "DATA_DIR %.150s: cannot create: %s", cfg->data_dir,
                 strerror(errno));
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/LOCK", cfg->data_dir);
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (self->lock_fd < 0) {
        snprintf(err, es, "DATA_DIR %.150s: cannot open LOCK: %s",
                 cfg->data_dir, strerror(errno));
        return -1;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, es,
                 "DATA_DIR %.150s is in use by another qkv-node (its LOCK is "
                 "held)",
                 cfg->data_dir);
        return -1;
    }
    int64_t t0 = qkv_now_us();
    uint64_t snap_bytes = 0;
    if (qkv_state_load(self->state, cfg->data_dir, snap, &snap_bytes, err,
                       es) != 0)
        return -1;
    *log_p = qkv_log_new();
    if (!*log_p) {
        snprintf(err, es, "out of memory");
        return -1;
    }
    qkv_log_reset(*log_p, snap->index, snap->term);
    qkv_wal_options_t o = {.dir = cfg->data_dir,
                           .fsync = (qkv_fsync_t)cfg->fsync,
                           .repair = cfg->repair_log,
                           .segment_bytes = cfg->wal_segment_bytes};
    s_failpoints(&o);
    self->wal = qkv_wal_open(&o, snap->index, *log_p, rp, err, es);
    if (!self->wal)
        return -1;
    self->saver =
        qkv_snap_saver_new(cfg->data_dir, cfg->fsync != QKV_FSYNC_NEVER);
    if (!self->saver) {
        snprintf(err, es, "cannot start the snapshot thread");
        return -1;
    }
    if (!rp->cluster_id)
        rp->cluster_id = snap->cluster_id;
    if (rp->term < snap->term)
        rp->term = snap->term;
    self->snap_index = snap->index;
    atomic_store(&self->node->snapshot_index, snap->index);
    atomic_store(&self->node->snapshot_bytes, snap_bytes);
    int64_t took = qkv_now_us() - t0;
    atomic_store(&self->node->recovery_us, (uint64_t)took);
    qkv_info("data in %s: snapshot at %llu (%llu keys, %llu bytes), %zu log "
             "segment(s) of %llu bytes, entries %llu..%llu, cluster %016llx, "
             "term %llu; recovered in %.3f s (FSYNC=%s)",
             cfg->data_dir, (unsigned long long)snap->index,
             (unsigned long long)snap->keys, (unsigned long long)snap_bytes,
             rp->segments, (unsigned long long)rp->bytes,
             (unsigned long long)qkv_log_first_index(*log_p),
             (unsigned long long)qkv_log_last_index(*log_p),
             (unsigned long long)rp->cluster_id, (unsigned long long)rp->term,
             (double)took / 1e6, qkv_fsync_name(cfg->fsync));
    return 0;
}

/* A threshold with this node's jitter of +-10%, so that nodes do not all
   snapshot at once. */
static uint64_t s_jitter(uint64_t value) {
    uint64_t spread = value / 5;
    return value - value / 10 + (spread ? qkv_random64() % (spread + 1) : 0);
}

/* The leader's term starts with an empty entry of that term: once it
   commits, so has everything before it (the own-term commit rule), and
   the leader serves. */
static int s_start_term(s_actor_t *self) {
    qkv_entry_t *noop = qkv_entry_new(QKV_OP_NOOP, "", 0, "", 0);
    if (!noop)
        return -1;
    noop->time_ms = qkv_wall_ms();
    if (qkv_core_propose(self->core, &noop) == 0) {
        free(noop);
        return -1;
    }
    return 0;
}

static int s_start(s_actor_t *self) {
    qkv_node_t *node = self->node;
    const qkv_config_t *cfg = self->cfg;
    char *err = node->start_error;
    size_t es = sizeof(node->start_error);
    bool leader = cfg->role == QKV_ROLE_LEADER && !cfg->peers;
    self->elections = cfg->peers != NULL;
    int64_t hb = (int64_t)cfg->heartbeat_ms * 1000;
    qkv_log_t *log = NULL;
    qkv_wal_replay_t rp = {0};
    qkv_snap_meta_t snap = {0};
    self->state = qkv_state_new(node->store, cfg->dedup_window,
                                cfg->session_ttl_s * 1000);
    if (!self->state) {
        snprintf(err, es, "out of memory starting replication");
        return -1;
    }
    if (cfg->data_dir[0] && s_open_data(self, &log, &rp, &snap, err, es) != 0) {
        qkv_log_destroy(&log);
        return -1;
    }
    self->snap_every = s_jitter(cfg->snapshot_entries);
    self->snap_bytes = s_jitter(cfg->snapshot_log_bytes);
    uint64_t cluster = rp.cluster_id;
    if (leader && !cluster)
        cluster = s_random_id(); /* a new cluster */
    int vote = QKV_CORE_NOBODY;
    if (rp.vote.vote && rp.vote.vote <= cfg->peer_count) {
        size_t who = rp.vote.vote - 1, me = cfg->self;
        vote = who == me ? QKV_CORE_SELF
                         : QKV_CORE_PEER + (int)(who < me ? who : who - 1);
    }
    bool empty =
        !cluster && (!log || qkv_log_last_index(log) == 0) && snap.index == 0;
    qkv_core_config_t cc = {
        .leader = leader,
        .peer_count = leader ? cfg->follower_count : 0,
        .write_quorum = leader ? (size_t)cfg->write_quorum : 0,
        .cluster_id = cluster,
        .term = leader ? rp.term + 1 : rp.term,
        .adopt_clusters = !self->wal || cfg->drop_foreign_data,
        .heartbeat_us = hb,
        /* an answer takes a round trip, the simulated delay included */
        .resend_us = (hb > 100000 ? hb : 100000) + cfg->max_delay_us,
        .batch_bytes = S_BATCH_BYTES,
        .window_bytes = S_WINDOW_BYTES,
        .commit_notify_us = (int64_t)cfg->commit_notify_ms * 1000,
        .ack_repeat_us = S_ACK_REPEAT_US,
        .elections = self->elections,
        .election_us = (int64_t)cfg->election_timeout_ms * 1000,
        .seed = qkv_random64(),
        .campaign_at_start = cfg->campaign_at_start,
        .vote = vote,
        .empty = empty,
        .rejoin_term = rp.vote.rejoin_term,
        .rejoin_commit = rp.vote.rejoin_commit};
    if (self->elections) {
        cc.peer_count = cfg->follower_count; /* every other node */
        cc.write_quorum = (size_t)cfg->write_quorum;
    }
    qkv_decoder_limits_t limits = {leader ? S_ACK_FRAME_MAX : S_FRAME_MAX,
                                   1u << 20, 64u << 20};
    self->core = qkv_core_new(&cc);
    if (self->core && log && qkv_core_restore(self->core, &log) != 0)
        qkv_core_destroy(&self->core);
    qkv_log_destroy(&log);
    if (self->core && leader && self->wal &&
        qkv_wal_persist_state(self->wal, qkv_core_log(self->core),
                              cc.cluster_id, cc.term, err, es))
        return -1; /* the term is durable before the leader serves */
    if (self->core && leader && s_start_term(self) != 0)
        qkv_core_destroy(&self->core);
    self->encoder = qkv_encoder_new();
    self->xfer_encoder = qkv_encoder_new();
    self->decoder = qkv_decoder_new(&limits);
    bool encoders = true;
    for (size_t i = 0; i < S_ENCODINGS; i++)
        encoders = (self->encodings[i].encoder = qkv_encoder_new()) && encoders;
    qkv_door_hooks_t hooks = {s_answer, s_numbered, self};
    self->door = self->core && self->state
                     ? qkv_door_new(node, self->core, self->state, &hooks)
                     : NULL;
    if (!self->core || !self->state || !self->encoder || !self->decoder ||
        !self->door || !encoders || !self->xfer_encoder) {
        snprintf(err, es, "out of memory starting replication");
        return -1;
    }
    self->timer_fd =
        timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (self->timer_fd < 0) {
        snprintf(err, es, "cannot create a timer: %s", strerror(errno));
        return -1;
    }
    snprintf(self->leader_endpoint, sizeof(self->leader_endpoint), "%s",
             leader            ? cfg->client_advertise
             : self->elections ? ""
                               : cfg->leader_endpoint);
    /* free descriptors the ZeroMQ ports leave: REST at its most (its
       workers and civetweb's queue of 20) and the node's next files (a
       log segment, a snapshot) */
    self->fds.reserve = cfg->http_threads + 20 + S_FD_RESERVE;
    self->clients = qkv_clients_new(node, self->door, self->leader_endpoint,
                                    &self->fds, err, es);
    if (!self->clients)
        return -1;
    if (self->elections) {
        const char *ids[QKV_MAX_FOLLOWERS], *keys[QKV_MAX_FOLLOWERS];
        for (size_t i = 0; i < cfg->follower_count; i++) {
            ids[i] = qkv_config_peer(cfg, i)->id;
            keys[i] = qkv_config_peer(cfg, i)->key;
        }
        qkv_mesh_opts_t mesh = {.self_id = cfg->node_id,
                                .endpoints = cfg->followers,
                                .ids = ids,
                                .keys = keys,
                                .count = cfg->follower_count,
                                .bind = cfg->bind,
                                .port = cfg->repl_port,
                                .max_in = S_FRAME_MAX,
                                .min_delay_us = cfg->min_delay_us,
                                .max_delay_us = cfg->max_delay_us,
                                .curve = qkv_node_curve(node),
                                .fds = &self->fds};
        self->peers = qkv_peers_new_mesh(&mesh, err, es);
        self->role = QKV_CORE_FOLLOWER;
        self->leader = QKV_CORE_NOBODY;
        qkv_info("one of %zu nodes (PEERS), quorum %d, election timeout %d "
                 "ms%s; cluster %016llx, term %llu",
                 cfg->peer_count, cfg->write_quorum, cfg->election_timeout_ms,
                 cfg->campaign_at_start ? ", asks for votes at once" : "",
                 (unsigned long long)cluster, (unsigned long long)cc.term);
    } else {
        self->peers =
            leader ? qkv_peers_new_leader(cfg->followers, cfg->follower_count,
                                          S_ACK_FRAME_MAX, cfg->min_delay_us,
                                          cfg->max_delay_us, err, es)
                   : qkv_peers_new_follower(cfg->bind, cfg->repl_port,
                                            S_FRAME_MAX, err, es);
    }
    if (!self->peers)
        return -1;
    if (leader)
        qkv_info("leader of cluster %016llx, term %llu, %zu followers, "
                 "quorum %d",
                 (unsigned long long)cc.cluster_id, (unsigned long long)cc.term,
                 cfg->follower_count, cfg->write_quorum);
    s_publish(self);
    return 0;
}

static void s_stop(s_actor_t *self) {
    int64_t now = qkv_now_us();
    qkv_waiter_t *w = qkv_node_inbox_close(self->node);
    while (w) {
        qkv_waiter_t *next = w->next;
        qkv_write_result_t r = {QKV_WRITE_UNAVAILABLE, 0, 0, now - w->start_us};
        qkv_waiter_answer(self->node, w, &r);
        w = next;
    }
    if (self->door)
        qkv_door_fail_all(self->door, now);
    if (self->clients)
        qkv_clients_flush(self->clients);
    qkv_clients_destroy(&self->clients);
    qkv_door_destroy(&self->door);
    qkv_peers_destroy(&self->peers);
    qkv_state_destroy(&self->state);
    qkv_snap_saver_destroy(&self->saver);
    qkv_wal_close(&self->wal);
    qkv_encoder_destroy(&self->xfer_encoder);
    qkv_buf_free(&self->xfer_image);
    qkv_buf_free(&self->recv_image);
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    qkv_core_destroy(&self->core);
    qkv_encoder_destroy(&self->encoder);
    for (size_t i = 0; i < S_ENCODINGS; i++)
        qkv_encoder_destroy(&self->encodings[i].encoder);
    qkv_decoder_destroy(&self->decoder);
    if (self->timer_fd >= 0)
        close(self->timer_fd);
}

void qkv_actor_run(zsock_t *pipe, void *args) {
    qkv_node_t *node = args;
    s_actor_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(node->start_error, sizeof(node->start_error),
                 "out of memory starting replication");
        zsock_signal(pipe, 1);
        return;
    }
    self->node = node;
    self->cfg = &node->config;
    self->pipe = pipe;
    self->timer_fd = -1;
    self->lock_fd = -1;
    if (s_start(self) != 0) {
        s_stop(self);
        free(self);
        zsock_signal(pipe, 1);
        return;
    }
    /* any node may lead with PEERS */
    bool leader = qkv_core_is_leader(self->core) || self->elections;
    /* poll items: pipe, timer, clients and their monitor, inbox (leader),
       then the replication sockets */
    enum {
        I_PIPE,
        I_TIMER,
        I_CLIENTS,
        I_MONITOR,
        I_INBOX,
        I_WAL,
        I_SNAP,
        I_PEERS
    };
    zmq_pollitem_t items[I_PEERS + QKV_MAX_FOLLOWERS];
    items[I_PIPE] = (zmq_pollitem_t){zsock_resolve(pipe), 0, ZMQ_POLLIN, 0};
    items[I_TIMER] = (zmq_pollitem_t){NULL, self->timer_fd, ZMQ_POLLIN, 0};
    qkv_clients_poll_items(self->clients, items + I_CLIENTS);
    items[I_INBOX] =
        (zmq_pollitem_t){NULL, node->wake_fd, leader ? ZMQ_POLLIN : 0, 0};
    items[I_WAL] = (zmq_pollitem_t){
        NULL, self->wal ? qkv_wal_event_fd(self->wal) : node->wake_fd,
        self->wal ? ZMQ_POLLIN : 0, 0};
    items[I_SNAP] = (zmq_pollitem_t){
        NULL, self->saver ? qkv_snap_saver_fd(self->saver) : node->wake_fd,
        self->saver ? ZMQ_POLLIN : 0, 0};
    size_t peer_items =
        qkv_peers_poll_items(self->peers, items + I_PEERS, QKV_MAX_FOLLOWERS);
    int count = I_PEERS + (int)peer_items;
    qkv_wait_t *wait = qkv_wait_new(items, (size_t)count);
    if (!wait) {
        snprintf(node->start_error, sizeof(node->start_error),
                 "out of memory starting replication");
        s_stop(self);
        free(self);
        zsock_signal(pipe, 1);
        return;
    }
    zsock_signal(pipe, 0);
    /* a first turn with no event: a leader's term entry is written (and,
       alone, commits) without waiting for something to wake the loop */
    s_end_turn(self, qkv_now_us());

    for (;;) {
        long timeout = s_arm_timer(self, qkv_now_us());
        /* sent on since the last wait: answers to clients, and with
           static roles APPENDs or ACKs on the sockets they come back on */
        if (qkv_clients_take_sent(self->clients))
            qkv_wait_touched(wait, I_CLIENTS);
        uint64_t sent = qkv_peers_take_sent(self->peers);
        for (size_t i = 0; sent; i++, sent >>= 1)
            if (sent & 1)
                qkv_wait_touched(wait, I_PEERS + i);
        if (qkv_wait(wait, timeout) < 0 && errno != EINTR)
            break;
        if (items[I_PIPE].revents & ZMQ_POLLIN) {
            char *command = zstr_recv(pipe);
            bool term = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (term)
                break;
        }
        if (items[I_TIMER].revents & ZMQ_POLLIN) {
            uint64_t expirations;
            ssize_t rc = read(self->timer_fd, &expirations, sizeof expirations);
            (void)rc; /* EAGAIN: re-armed since it fired */
        }
        int64_t now = qkv_now_us();
        if (((items[I_CLIENTS].revents | items[I_MONITOR].revents) &
             ZMQ_POLLIN) &&
            qkv_clients_read(self->clients, now))
            qkv_wait_drained(wait, I_CLIENTS);
        if (items[I_WAL].revents & ZMQ_POLLIN)
            qkv_core_durable_to(
                self->core,
                qkv_wal_durable(self->wal, qkv_core_log(self->core), now));
        if (items[I_SNAP].revents & ZMQ_POLLIN)
            s_snapshot_saved(self);
        if (items[I_INBOX].revents & ZMQ_POLLIN)
            s_take_inbox(self, now);

        for (size_t i = 0; i < peer_items; i++)
            if ((items[I_PEERS + i].revents & ZMQ_POLLIN) &&
                s_read_peers(self, i, now))
                qkv_wait_drained(wait, I_PEERS + i);
        s_end_turn(self, now);
    }
    qkv_wait_destroy(&wait);
    s_stop(self);
    free(self);
}
