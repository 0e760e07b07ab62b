/*  qkv_core.c - the replication core (qkv_core.h).

    Design
    ------
    One leader numbers every write and streams its log to every follower;
    an entry is committed once the leader holds it durably and
    write_quorum followers have verified it. This file holds every rule of
    that, and nothing else: the actor (qkv_actor.c) owns the sockets, the
    timer and the state machine, feeds events in, and after each turn asks
    qkv_core_ready what to send and what to apply. The shape follows
    etcd-io/raft: log matching as log.go's maybeAppend/findConflict, and a
    Progress per peer with the PROBE and REPLICATE states of
    tracker/progress.go.

    Log matching. An APPEND says "after (prev_index, prev_term) come these
    entries". A follower that holds prev_index with prev_term keeps the
    entries: it skips those it already has with the same term, drops its
    log from the first entry whose term differs (never a committed one:
    that would mean two leaders disagree on a committed entry, and it stops
    instead), and appends the rest. It then acknowledges the end of the
    prefix it verified against this APPEND, prev_index + entries, not
    merely its last index: whatever lies beyond was never checked against
    this leader. A follower has dropped the entries it applied; they are
    committed, and committed entries match on every node, so an APPEND
    reaching back before its log is trimmed to it. A follower that lacks
    prev_index, or holds it with another term, refuses and hints where to
    walk back to: its last (index, term) at or below the refused index.

    Progress. The leader's match index for a peer rises only with a
    verified ACK; a refusal whose hint lies below it means the peer lost
    what it had (a follower without a data directory restarted), and then
    match goes down to the hint so that the commit rule counts only copies
    that exist. REPLICATE pipelines batches while the entries in flight
    stay within window_bytes. A refusal, a failed send, or entries in
    flight with no progress for resend_us move the peer to PROBE at its
    match + 1: one APPEND, then nothing until it is answered or resend_us
    passes. A refusal that answers an older APPEND than the one the peer
    is at is stale and ignored (one link is first in, first out).

    Commit. commit = the write_quorum-th highest match (qkv_quorum.c),
    capped by the leader's own durable index, and only if that entry is of
    the current term (Raft figure 8: never commit an older term's entry by
    counting copies). Followers learn it from every APPEND and heartbeat,
    capped by the prefix that APPEND verified, and apply up to it. A new
    commit index waits for the next APPEND with entries to a peer, for at
    most commit_notify_us from when the leader learned it; then an APPEND
    without entries carries it. Under load every commit rides on a batch,
    which halves the frames a follower receives (and wakes up for).

    Elections (only with PEERS; the static roles never change). As Raft
    section 5.2 with etcd's pre-vote and check quorum, and DESIGN's
    flexible quorums: with N nodes and q = write_quorum, a write commits on
    W = q + 1 nodes and an election needs E = max(N - q, floor(N/2) + 1)
    votes, candidate included, so E + W > N (every election meets every
    commit) and 2E > N (two elections of one term meet). A follower that
    hears no leader for a timeout drawn from [T, 2T) first asks for
    pre-votes at term + 1 without raising its own term: a node that
    returns from a partition learns it cannot win before it disturbs
    anyone. With E pre-votes it raises its term, votes for itself and asks
    for votes; with E votes it leads, and its term begins with a NOOP
    entry (own-term commit). A vote goes to at most one candidate per term,
    whose log is at least as up to date (last term, then last index), and
    never while the node heard from a live leader within T (the leader
    itself refuses too). Term and vote changes raise ready.persist: the
    actor makes them durable before any message of the turn leaves. A
    leader that heard from fewer than N - E + 1 nodes (itself included)
    within T steps down. Its read lease: every APPEND carries the leader's
    clock, every ACK echoes the newest it received; once N - E peers echo
    a time at or after s, no other leader can be elected before s + T
    (each of them refuses votes until T after it heard the leader), so the
    leader may read until s + T less a margin for clock drift.

    A node started with no data votes only for a candidate that has no
    cluster either (bootstrap). Once it hears a leader with data, it is a
    non-voter until it has applied that leader's commit index and is asked
    for a vote in a term above the one it rejoined in: a node that lost
    its disk may have voted or acknowledged in its former life, and must
    not count twice.

    Messages accumulate in an outbox during a turn; ready() adds the
    leader's batches and heartbeats and hands the outbox over. Consecutive
    successful ACKs of a follower coalesce into the last, and an ACK equal
    to the previous one sent within ack_repeat_us is left out: the leader
    learns nothing from it.
*/
#include "qkv_core.h"
#include "qkv_hash.h"
#include "qkv_quorum.h"
#include "qkv_ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t match;            /* highest index verified on the peer */
    uint64_t next;             /* next index to send */
    uint64_t commit_sent;      /* commit index it was last told */
    bool probing;              /* PROBE, else REPLICATE */
    bool paused;               /* PROBE: an APPEND awaits its answer */
    int64_t probe_sent_us;     /* PROBE: when that APPEND went */
    int64_t last_send_us;      /* last message queued to it */
    int64_t last_ack_us;       /* last ACK from it; 0 = never */
    int64_t last_progress_us;  /* last time match rose */
    bool inflight;             /* REPLICATE: entries beyond match went out */
    int64_t inflight_since_us; /* ... since then */
    bool snapshot;             /* SNAPSHOT: its next entry is no longer in
                                  the log; a snapshot is on its way */
    int64_t snapshot_us;       /* when it was asked for */
    int64_t echo_us;           /* newest of the leader's times it echoed */
} s_progress_t;

/* A snapshot unanswered for this many resend intervals is sent again. */
#define S_SNAPSHOT_PATIENCE 100

/* An ACK a follower owes; its index is computed when it goes out. */
typedef struct {
    size_t peer; /* the sender of the APPEND it answers */
    bool ok;
    uint64_t index; /* ok: verified end; refused: the prev_index refused */
    uint64_t hint_index, hint_term;
} s_owed_t;

#define S_OWED_MAX 8 /* refusals kept per turn beyond the coalesced ACK */

struct qkv_core_t {
    qkv_core_config_t cfg; /* as given */
    qkv_log_t *log;        /* the in-memory log */
    uint64_t cluster_id;   /* the cluster followed or led; 0 = none yet */
    uint64_t term;         /* highest term seen */
    uint64_t commit;       /* highest index known committed */
    int64_t commit_us;     /* leader: when commit last rose */
    uint64_t applied;      /* the state machine's applied index */
    uint64_t durable;      /* entries held as FSYNC promises */
    bool stopped;          /* follower: acknowledges nothing more */
    char error[256];       /* why it stopped */
    qkv_core_role_t role;
    int leader; /* whom it follows: NOBODY, SELF or PEER + p */
    /* elections */
    int vote;               /* in term: NOBODY, SELF or PEER + p */
    bool dirty;             /* the hard state changed since the last ready */
    uint64_t rng;           /* xorshift state */
    bool timer_set;         /* elect_due_us was drawn */
    int64_t elect_due_us;   /* not leading: campaign then */
    int64_t heard_us;       /* last message of the leader it follows */
    uint64_t granted;       /* campaign: peers that said yes (bit p) */
    uint64_t refused;       /* ... and no */
    int64_t check_due_us;   /* leader: next check quorum */
    int64_t lease_until_us; /* leader: reads are linearizable until then */
    bool empty;             /* no data yet, and never rejoined */
    bool cluster_seen;      /* empty, and a peer has a cluster: no
                               bootstrap (it waits for a leader) */
    uint64_t rejoin_term;   /* rejoining: votes only above this term ... */
    uint64_t rejoin_commit; /* ... once applied up to here */
    int64_t echo_us;        /* follower: the leader's newest sent_us */
    bool transferring;      /* leader: handing over to transfer_peer */
    size_t transfer_peer;
    int64_t transfer_until_us; /* ... given up then */
    int64_t timeout_sent_us;   /* ... its TIMEOUT_NOW went then; 0 not */
    /* leader */
    s_progress_t peers[QKV_CORE_MAX_PEERS];
    qkv_ring_t cum;      /* uint64: wire bytes of entries 1 .. i at i */
    uint64_t last_time;  /* time_ms of the last entry proposed */
    uint64_t term_first; /* index of the first entry of its term; 0 none */
    /* follower */
    uint64_t verified;  /* end of the last prefix verified this term */
    uint64_t acked;     /* index of the last ok ACK sent */
    bool reset;         /* a new cluster: the state machine must drop */
    bool foreign;       /* error says another cluster's leader was refused */
    uint64_t truncated; /* lowest index dropped since the last take; 0 none */
    s_owed_t owed[S_OWED_MAX + 1];
    size_t owed_count;
    qkv_core_msg_t last_ack; /* the last ACK that went out */
    bool acked_once;         /* last_ack is set */
    int64_t last_ack_us;     /* when it went */
    /* outbox */
    qkv_ring_t out; /* qkv_core_msg_t; never popped: in order from out.data */
    bool out_taken; /* ready handed it over: the next message starts anew */
};

/*  =====================================================================
    Life cycle */

qkv_core_t *qkv_core_new(const qkv_core_config_t *cfg) {
    if (cfg->peer_count > QKV_CORE_MAX_PEERS ||
        (cfg->leader && (cfg->cluster_id == 0 || cfg->term == 0 ||
                         cfg->write_quorum > cfg->peer_count)) ||
        (cfg->elections &&
         (cfg->leader || cfg->election_us <= 0 ||
          cfg->write_quorum > cfg->peer_count ||
          cfg->vote > (int)cfg->peer_count || cfg->vote < QKV_CORE_SELF)))
        return NULL;
    qkv_core_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->cfg = *cfg;
    self->cluster_id = cfg->cluster_id; /* a follower: recovered, or 0 */
    self->term = cfg->term;
    self->role = cfg->leader ? QKV_CORE_LEADER : QKV_CORE_FOLLOWER;
    self->leader = cfg->leader ? QKV_CORE_SELF : QKV_CORE_NOBODY;
    self->vote = cfg->elections ? cfg->vote : QKV_CORE_NOBODY;
    self->rng = cfg->seed | 1; /* xorshift needs a non-zero state */
    self->empty = cfg->elections && cfg->empty && !cfg->cluster_id;
    self->rejoin_term = cfg->elections ? cfg->rejoin_term : 0;
    self->rejoin_commit = self->rejoin_term ? cfg->rejoin_commit : 0;
    self->log = qkv_log_new();
    qkv_ring_init(&self->cum, sizeof(uint64_t));
    qkv_ring_init(&self->out, sizeof(qkv_core_msg_t));
    uint64_t *zero = qkv_ring_push(&self->cum);
    if (!self->log || !zero) {
        qkv_core_destroy(&self);
        return NULL;
    }
    *zero = 0;
    for (size_t i = 0; i < cfg->peer_count; i++)
        self->peers[i].next = 1;
    return self;
}

void qkv_core_destroy(qkv_core_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_core_t *self = *self_p;
    qkv_log_destroy(&self->log);
    qkv_ring_free(&self->cum);
    qkv_ring_free(&self->out);
    free(self);
    *self_p = NULL;
}

const qkv_log_t *qkv_core_log(const qkv_core_t *self) {
    return self->log;
}

/*  =====================================================================
    Outbox */

static void s_outbox_fresh(qkv_core_t *self) {
    if (self->out_taken) {
        qkv_ring_truncate(&self->out, 0);
        self->out_taken = false;
    }
}

static qkv_core_msg_t *s_emit(qkv_core_t *self, int type, size_t peer) {
    s_outbox_fresh(self);
    qkv_core_msg_t *m = qkv_ring_push(&self->out);
    if (!m)
        return NULL; /* dropped: resends and heartbeats make up for it */
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->peer = peer;
    m->cluster_id = self->cluster_id;
    m->term = self->term;
    return m;
}

/*  =====================================================================
    Leader */

/* Wire bytes of the entries held up to index (first_index - 1 .. last). */
static uint64_t s_cum(const qkv_core_t *self, uint64_t index) {
    uint64_t base = qkv_log_first_index(self->log) - 1;
    return *(uint64_t *)qkv_ring_at(&self->cum, (size_t)(index - base));
}

uint64_t qkv_core_propose(qkv_core_t *self, qkv_entry_t **entry_p) {
    if (self->role != QKV_CORE_LEADER || self->transferring)
        return 0;
    uint64_t index = qkv_log_last_index(self->log) + 1;
    uint64_t *cum = qkv_ring_push(&self->cum);
    if (!cum)
        return 0;
    qkv_entry_t *entry = *entry_p;
    entry->term = self->term;
    if (entry->time_ms < self->last_time)
        entry->time_ms = self->last_time;
    *cum = s_cum(self, index - 1) + qkv_entry_wire_size(entry);
    if (qkv_log_append(self->log, entry_p) == 0) {
        qkv_ring_truncate(&self->cum, self->cum.count - 1);
        return 0;
    }
    self->last_time = entry->time_ms;
    if (!self->term_first)
        self->term_first = index;
    return index;
}

static void s_probe(s_progress_t *p, uint64_t next) {
    p->probing = true;
    p->paused = false;
    p->next = next > p->match ? next : p->match + 1;
    p->inflight = false;
}

/* Where to probe a peer that did not answer: after its match, but not
   before the log's first entry (a leader that restarted knows no match
   yet): only a refusal that reaches back before it asks for a
   snapshot. */
static uint64_t s_probe_from(const qkv_core_t *self, const s_progress_t *p) {
    uint64_t first = qkv_log_first_index(self->log);
    return p->match + 1 > first ? p->match + 1 : first;
}

static void s_become_follower(qkv_core_t *self, uint64_t term, int leader,
                              int64_t now);
static void s_reset_timer(qkv_core_t *self, int64_t now);
static int s_rebuild_cum(qkv_core_t *self, const qkv_log_t *log);

int qkv_core_step_ack(qkv_core_t *self, size_t peer, const qkv_msg_t *m,
                      int64_t now) {
    if (self->cfg.elections && peer < self->cfg.peer_count &&
        m->cluster_id == self->cluster_id && m->term > self->term) {
        /* a node of a later term: a newer leader may exist */
        s_become_follower(self, m->term, QKV_CORE_NOBODY, now);
        return 0;
    }
    if (self->role != QKV_CORE_LEADER || peer >= self->cfg.peer_count ||
        m->cluster_id != self->cluster_id || m->term > self->term)
        return self->cfg.elections && peer < self->cfg.peer_count
                   ? 0 /* an answer to a leadership it no longer holds */
                   : QKV_MALFORMED;
    uint64_t last = qkv_log_last_index(self->log);
    if (m->index > last || m->hint_index > last)
        return QKV_MALFORMED;
    if (m->term < self->term)
        return 0; /* an answer to an older leadership */
    s_progress_t *p = &self->peers[peer];
    p->last_ack_us = now;
    if (m->echo_us > p->echo_us)
        p->echo_us = m->echo_us;
    if (m->ok) {
        if (m->index > p->match) {
            p->match = m->index;
            p->last_progress_us = now;
        }
        if (p->snapshot && p->match >= qkv_log_first_index(self->log) - 1) {
            /* the snapshot is in: replicate from after it */
            p->snapshot = p->probing = p->paused = false;
            p->next = p->match + 1;
        } else if (p->snapshot) {
            p->snapshot_us = 0; /* in, but the log moved past it: another */
        }
        if (p->probing) {
            p->probing = p->paused = false;
            p->next = p->match + 1;
        } else if (p->next <= p->match) {
            p->next = p->match + 1;
        }
        if (p->next - 1 <= p->match)
            p->inflight = false; /* everything sent is verified */
        return 0;
    }
    /* A refusal. A hint below match: the peer lost what it had. */
    if (m->hint_index < p->match) {
        p->match = m->hint_index;
        s_probe(p, m->hint_index + 1);
        return 0;
    }
    /* A peer whose last entry comes before what the log still holds needs
       a snapshot, whichever APPEND its refusal answers (the log's start
       moves with every snapshot, and probes with it). */
    bool behind = m->hint_index + 1 < qkv_log_first_index(self->log);
    bool stale = p->probing ? m->index != p->next - 1 : m->index <= p->match;
    if (stale && !behind)
        return 0;

    /* etcd's findConflictByTerm on the leader's side: none of its entries
       of a term above the hint's can match the follower's at hint_index
       or below, so the probe skips them all at once */
    uint64_t hint = m->hint_index, base = qkv_log_first_index(self->log) - 1;
    while (hint > base && qkv_log_term_at(self->log, hint) > m->hint_term)
        hint--;
    uint64_t next = m->index < hint + 1 ? m->index : hint + 1;
    s_probe(p, next ? next : 1);

    return 0;
}

void qkv_core_send_failed(qkv_core_t *self, size_t peer, int64_t now) {
    if (self->role != QKV_CORE_LEADER || peer >= self->cfg.peer_count)
        return;
    s_progress_t *p = &self->peers[peer];
    s_probe(p, s_probe_from(self, p));
    p->paused = true; /* try again after a resend interval */
    p->probe_sent_us = now;
}

/* Queues an APPEND from p->next: with_entries, at most batch_bytes of
   entries (and at least one when there are any), else none. In REPLICATE
   the entries count as in flight and next moves past them; in PROBE next
   stays, so the answer can be matched to the probe. */
static void s_send_append(qkv_core_t *self, size_t peer, bool with_entries,
                          int64_t now) {
    s_progress_t *p = &self->peers[peer];
    uint64_t last = qkv_log_last_index(self->log);
    uint64_t first = p->next, end = first - 1;
    if (with_entries && first <= last) {
        end = first;
        uint64_t base = s_cum(self, first - 1);
        while (end < last &&
               s_cum(self, end + 1) - base <= self->cfg.batch_bytes)
            end++;
    }
    qkv_core_msg_t *m = s_emit(self, QKV_MSG_APPEND, peer);
    if (!m)
        return;
    m->prev_index = first - 1;
    m->prev_term = qkv_log_term_at(self->log, first - 1);
    m->commit_index = self->commit;
    m->first = first;
    m->last = end;
    m->sent_us = now;
    p->last_send_us = now;
    p->commit_sent = self->commit;
    if (end >= first && !p->probing) {
        if (!p->inflight) {
            p->inflight = true;
            p->inflight_since_us = now;
        }
        p->next = end + 1;
    }
}

static void s_leader_commit(qkv_core_t *self, int64_t now) {
    uint64_t match[QKV_CORE_MAX_PEERS];
    for (size_t i = 0; i < self->cfg.peer_count; i++)
        match[i] = self->peers[i].match;
    uint64_t index = qkv_quorum_commit_index(match, self->cfg.peer_count,
                                             self->cfg.write_quorum,
                                             self->durable, self->commit);
    if (index > self->commit &&
        qkv_log_term_at(self->log, index) == self->term) {
        self->commit = index;
        self->commit_us = now;
    }
}

/* Whether peer p must hear of the commit index now: it was not told, and
   the leader learned it commit_notify_us ago (an APPEND with entries
   tells it sooner). */
static bool s_commit_news_due(const qkv_core_t *self, const s_progress_t *p,
                              int64_t now) {
    return p->commit_sent < self->commit &&
           now - self->commit_us >= self->cfg.commit_notify_us;
}

static void s_leader_peer(qkv_core_t *self, size_t peer, int64_t now) {
    s_progress_t *p = &self->peers[peer];
    uint64_t last = qkv_log_last_index(self->log);
    int64_t resend = self->cfg.resend_us;
    if (p->next < qkv_log_first_index(self->log)) {
        /* what it needs next was compacted away: a snapshot, then the
           log after it (asked again when nothing came of it) */
        if (!p->snapshot ||
            now - p->snapshot_us >= S_SNAPSHOT_PATIENCE * resend) {
            qkv_core_msg_t *m = s_emit(self, QKV_MSG_SNAPSHOT, peer);
            if (m) {
                p->snapshot = true;
                p->snapshot_us = p->last_send_us = now;
            }
        }
        return;
    }
    p->snapshot = false;
    if (!p->probing && p->inflight && p->next - 1 > p->match &&
        now - p->inflight_since_us > resend &&
        now - p->last_progress_us > resend)
        s_probe(p, s_probe_from(self, p)); /* unanswered: resend */
    if (p->probing && p->paused && now - p->probe_sent_us >= resend)
        p->paused = false;
    if (p->probing) {
        if (!p->paused) {
            s_send_append(self, peer, true, now);
            p->paused = true;
            p->probe_sent_us = now;
        }
    } else {
        while (p->next <= last &&
               s_cum(self, p->next - 1) - s_cum(self, p->match) <
                   self->cfg.window_bytes) {
            size_t before = self->out.count;
            s_send_append(self, peer, true, now);
            if (self->out.count == before)
                break; /* out of memory: try again next turn */
        }
    }
    if (s_commit_news_due(self, p, now) ||
        now - p->last_send_us >= self->cfg.heartbeat_us)
        s_send_append(self, peer, false, now);
}

/*  =====================================================================
    Follower */

static void s_owe(qkv_core_t *self, size_t peer, bool ok, uint64_t index,
                  uint64_t hint_index, uint64_t hint_term) {
    s_owed_t *last =
        self->owed_count ? &self->owed[self->owed_count - 1] : NULL;
    if (ok && last && last->ok && last->peer == peer) {
        if (index > last->index)
            last->index = index; /* one ACK says as much as two */
        return;
    }
    if (self->owed_count == S_OWED_MAX + 1) {
        /* keep the newest: drop the oldest */
        memmove(self->owed, self->owed + 1, S_OWED_MAX * sizeof(self->owed[0]));
        self->owed_count--;
    }
    self->owed[self->owed_count++] =
        (s_owed_t){peer, ok, index, hint_index, hint_term};
}

static void s_refuse(qkv_core_t *self, size_t peer, uint64_t refused,
                     uint64_t below, uint64_t refused_term) {
    uint64_t last = qkv_log_last_index(self->log);
    uint64_t hint = below < last ? below : last;
    uint64_t base = qkv_log_first_index(self->log) - 1;
    if (hint < base)
        hint = base;
    /* as etcd's findConflictByTerm: an entry of a term above the leader's
       prev_term cannot match what the leader holds there, so the hint
       skips them all at once rather than one index per round trip */
    while (hint > base && qkv_log_term_at(self->log, hint) > refused_term)
        hint--;
    s_owe(self, peer, false, refused, hint, qkv_log_term_at(self->log, hint));
}

/* Stops the follower: why is fmt with the index a. Returns -1. */
static int s_stop(qkv_core_t *self, const char *fmt, unsigned long long a) {
    char why[sizeof(self->error)];
    snprintf(why, sizeof(why), fmt, a);
    qkv_core_fail(self, why);
    return -1;
}

static void s_follow_cluster(qkv_core_t *self, uint64_t cluster_id) {
    qkv_log_clear(self->log);
    self->cluster_id = cluster_id;
    if (!self->cfg.elections)
        self->term = 0; /* with elections, term and vote stand */
    self->dirty = true;
    self->commit = self->applied = self->durable = 0;
    self->verified = self->acked = 0;
    self->stopped = false;
    self->error[0] = '\0';
    self->owed_count = 0;
    self->acked_once = false;
    self->reset = true;
    self->truncated = 1; /* the write-ahead log forgets it all */
}

int qkv_core_step_append(qkv_core_t *self, size_t peer, const qkv_msg_t *m,
                         int64_t now) {
    if (self->cfg.elections) {
        if (peer >= self->cfg.peer_count)
            return 0;
        if (self->role == QKV_CORE_LEADER && m->term <= self->term) {
            if (m->term < self->term)
                s_refuse(self, peer, m->prev_index, m->prev_index,
                         UINT64_MAX); /* tells the old leader */
            return 0;
        }
        if (self->empty && m->cluster_id) {
            /* rejoining with no data: a non-voter until caught up */
            self->empty = false;
            self->rejoin_term = m->term;
            self->rejoin_commit = m->commit_index;
            self->dirty = true;
        }
    } else if (self->role == QKV_CORE_LEADER) {
        return 0;
    } else {
        peer = 0;
    }
    if (m->cluster_id != self->cluster_id) {
        if (self->cluster_id && !self->cfg.adopt_clusters) {
            snprintf(self->error, sizeof(self->error),
                     "this node holds the data of cluster %016llx and the "
                     "leader leads cluster %016llx: refusing to join (start "
                     "it with DROP_FOREIGN_DATA=1 to drop its data and join)",
                     (unsigned long long)self->cluster_id,
                     (unsigned long long)m->cluster_id);
            self->foreign = true;
            return -1;
        }
        s_follow_cluster(self, m->cluster_id);
    }
    if (self->stopped)
        return -1;
    if (self->foreign) {
        self->foreign = false;
        self->error[0] = '\0';
    }
    if (m->term < self->term) {
        s_refuse(self, peer, m->prev_index, m->prev_index, UINT64_MAX);
        return 0;
    }
    if (m->term > self->term) {
        self->term = m->term;
        self->verified = self->acked = 0;
        self->vote = QKV_CORE_NOBODY;
        self->dirty = true;
    }
    if (self->cfg.elections) {
        s_become_follower(self, m->term, QKV_CORE_PEER + (int)peer, now);
        s_reset_timer(self, now); /* a live leader: no campaign */
        self->heard_us = now;
        self->echo_us = m->sent_us;
    }
    uint64_t prev = m->prev_index, prev_term = m->prev_term;
    const qkv_entry_view_t *entries = m->entries;
    size_t n = m->entry_count;
    uint64_t verified_end = m->prev_index + m->entry_count;
    uint64_t base = qkv_log_first_index(self->log) - 1;
    if (prev < base) {
        /* what lies at or below base was applied: committed, matching */
        uint64_t skip = base - prev;
        if (skip >= n)
            goto accepted;
        entries += skip;
        n -= (size_t)skip;
        prev = base;
        prev_term = qkv_log_term_at(self->log, base);
    }
    uint64_t last = qkv_log_last_index(self->log);
    if (prev > last) {
        s_refuse(self, peer, m->prev_index, last, m->prev_term);
        return 0;
    }
    if (qkv_log_term_at(self->log, prev) != prev_term) {
        if (prev <= self->commit)
            return s_stop(self,
                          "the leader's log differs at committed index %llu: "
                          "not acknowledging",
                          (unsigned long long)prev);
        s_refuse(self, peer, m->prev_index, prev - 1, m->prev_term);
        return 0;
    }
    size_t k = 0;
    for (; k < n && prev + 1 + k <= last; k++) {
        uint64_t index = prev + 1 + k;
        if (qkv_log_term_at(self->log, index) == entries[k].term)
            continue;
        if (index <= self->commit)
            return s_stop(self,
                          "the leader's entry %llu conflicts with a committed "
                          "one: not acknowledging",
                          (unsigned long long)index);
        qkv_log_truncate(self->log, index);
        if (self->durable >= index)
            self->durable = index - 1;
        if (!self->truncated || index < self->truncated)
            self->truncated = index;
        break;
    }
    for (; k < n; k++) {
        const qkv_entry_view_t *v = &entries[k];
        qkv_entry_t *e = qkv_entry_new((qkv_op_t)v->op, v->key, v->key_len,
                                       v->value, v->value_len);
        if (e) {
            e->term = v->term;
            e->client_id = v->client_id;
            e->client_seq = v->client_seq;
            e->time_ms = v->time_ms;
        }
        if (!e || qkv_log_append(self->log, &e) == 0) {
            free(e);
            return s_stop(self,
                          "out of memory holding index %llu: not "
                          "acknowledging",
                          (unsigned long long)(prev + 1 + k));
        }
    }
accepted:
    if (verified_end > self->verified)
        self->verified = verified_end;
    s_owe(self, peer, true, verified_end, 0, 0);
    uint64_t commit =
        m->commit_index < verified_end ? m->commit_index : verified_end;
    if (commit > self->commit)
        self->commit = commit;
    return 0;
}

/* Emits the ACKs owed, each ok one capped by what is durable. */
static void s_follower_acks(qkv_core_t *self, int64_t now) {
    for (size_t i = 0; i < self->owed_count; i++) {
        const s_owed_t *o = &self->owed[i];
        qkv_core_msg_t ack = {0};
        ack.type = QKV_MSG_ACK;
        ack.peer = o->peer;
        ack.echo_us = self->echo_us;
        ack.cluster_id = self->cluster_id;
        ack.term = self->term;
        ack.ok = o->ok;
        ack.index =
            o->ok && o->index > self->durable ? self->durable : o->index;
        ack.hint_index = o->hint_index;
        ack.hint_term = o->hint_term;
        bool same = self->acked_once && ack.peer == self->last_ack.peer &&
                    ack.ok == self->last_ack.ok &&
                    ack.index == self->last_ack.index &&
                    ack.term == self->last_ack.term &&
                    ack.cluster_id == self->last_ack.cluster_id &&
                    ack.hint_index == self->last_ack.hint_index;
        if (same && now - self->last_ack_us < self->cfg.ack_repeat_us)
            continue;
        qkv_core_msg_t *m = s_emit(self, QKV_MSG_ACK, 0);
        if (!m)
            break;
        *m = ack;
        self->last_ack = ack;
        self->acked_once = true;
        self->last_ack_us = now;
        if (ack.ok && ack.index > self->acked)
            self->acked = ack.index;
    }
    self->owed_count = 0;
}

/*  =====================================================================
    Elections */

static size_t s_nodes(const qkv_core_t *self) {
    return self->cfg.peer_count + 1;
}

size_t qkv_core_election_quorum(const qkv_core_t *self) {
    size_t n = s_nodes(self), q = self->cfg.write_quorum;
    size_t majority = n / 2 + 1;
    return n - q > majority ? n - q : majority;
}

/* N - E + 1: the nodes (the leader included) a leader must hear from. */
static size_t s_hold_quorum(const qkv_core_t *self) {
    return s_nodes(self) - qkv_core_election_quorum(self) + 1;
}

static uint64_t s_rand(qkv_core_t *self) {
    return qkv_xorshift64(&self->rng);
}

static void s_reset_timer(qkv_core_t *self, int64_t now) {
    int64_t t = self->cfg.election_us;
    self->elect_due_us = now + t + (int64_t)(s_rand(self) % (uint64_t)t);
    self->timer_set = true;
}

static void s_become_follower(qkv_core_t *self, uint64_t term, int leader,
                              int64_t now) {
    if (term > self->term) {
        self->term = term;
        self->vote = QKV_CORE_NOBODY;
        self->verified = self->acked = 0;
        self->dirty = true;
    }
    if (self->role != QKV_CORE_FOLLOWER || self->leader != leader)
        s_reset_timer(self, now);
    self->role = QKV_CORE_FOLLOWER;
    self->leader = leader;
    self->echo_us = 0;
    self->transferring = false;
}

static uint64_t s_last_term(const qkv_core_t *self) {
    return qkv_log_term_at(self->log, qkv_log_last_index(self->log));
}

static void s_become_leader(qkv_core_t *self, int64_t now) {
    qkv_entry_t *noop = qkv_entry_new(QKV_OP_NOOP, NULL, 0, NULL, 0);
    if (!noop || s_rebuild_cum(self, self->log) != 0) {
        free(noop); /* out of memory: let another node lead */
        s_become_follower(self, self->term, QKV_CORE_NOBODY, now);
        return;
    }
    if (!self->cluster_id) {
        self->cluster_id = s_rand(self) | 1; /* a new cluster */
        self->dirty = true;
    }
    self->empty = false;
    self->role = QKV_CORE_LEADER;
    self->leader = QKV_CORE_SELF;
    self->owed_count = 0;
    uint64_t last = qkv_log_last_index(self->log);
    for (size_t i = 0; i < self->cfg.peer_count; i++) {
        s_progress_t *p = &self->peers[i];
        memset(p, 0, sizeof(*p));
        s_probe(p, last + 1);
    }
    self->term_first = 0;
    self->lease_until_us = 0;
    self->check_due_us = now + self->cfg.election_us;
    const qkv_entry_t *tail = qkv_log_get(self->log, last);
    if (tail && tail->time_ms > self->last_time)
        self->last_time = tail->time_ms;
    if (qkv_core_propose(self, &noop) == 0) {
        free(noop);
        s_become_follower(self, self->term, QKV_CORE_NOBODY, now);
    }
}

static void s_campaign(qkv_core_t *self, bool pre, bool transfer, int64_t now);

/* Counts the answers of a campaign: won, lost, or not yet. */
static void s_tally(qkv_core_t *self, int64_t now) {
    size_t yes = 1 + (size_t)__builtin_popcountll(self->granted);
    size_t no = (size_t)__builtin_popcountll(self->refused);
    size_t e = qkv_core_election_quorum(self);
    if (yes >= e) {
        if (self->role == QKV_CORE_PRE_CANDIDATE)
            s_campaign(self, false, false, now);
        else
            s_become_leader(self, now);
    } else if (no > s_nodes(self) - e) {
        s_become_follower(self, self->term, QKV_CORE_NOBODY, now);
    }
}

static void s_campaign(qkv_core_t *self, bool pre, bool transfer, int64_t now) {
    self->role = pre ? QKV_CORE_PRE_CANDIDATE : QKV_CORE_CANDIDATE;
    self->leader = QKV_CORE_NOBODY;
    if (!pre) {
        self->term++; /* above any term it rejoined in: a voter again */
        self->vote = QKV_CORE_SELF;
        self->rejoin_term = self->rejoin_commit = 0;
        self->verified = self->acked = 0;
        self->dirty = true;
    }
    self->granted = self->refused = 0;
    s_reset_timer(self, now);
    for (size_t i = 0; i < self->cfg.peer_count; i++) {
        qkv_core_msg_t *m = s_emit(self, QKV_MSG_VOTE, i);
        if (!m)
            break;
        m->term = pre ? self->term + 1 : self->term;
        m->pre = pre;
        m->transfer = transfer;
        m->last_index = qkv_log_last_index(self->log);
        m->last_term = s_last_term(self);
    }
    s_tally(self, now); /* a node that needs no other vote wins at once */
}

/* A node rejoining after an empty start, or still empty, may vote in m's
   election. (A rejoining node that caught up may also campaign: its own
   vote goes to a term above any it rejoined in.) */
static bool s_may_vote(qkv_core_t *self, const qkv_msg_t *m) {
    if (self->rejoin_term)
        return self->durable >= self->rejoin_commit &&
               m->term > self->rejoin_term;
    if (self->empty)
        return m->cluster_id == 0 && !self->cluster_seen; /* bootstrap */
    return true;
}

static void s_on_vote(qkv_core_t *self, size_t peer, const qkv_msg_t *m,
                      int64_t now) {
    int64_t t = self->cfg.election_us;
    bool in_lease =
        self->role == QKV_CORE_LEADER ||
        (self->leader != QKV_CORE_NOBODY && now - self->heard_us < t);
    if (in_lease && m->term > self->term && !m->transfer)
        return; /* a live leader: not disturbed (etcd ignores it too) */
    if (self->empty && m->cluster_id)
        self->cluster_seen = true; /* a cluster exists: no new one */
    bool foreign =
        m->cluster_id && self->cluster_id && m->cluster_id != self->cluster_id;
    if (!m->pre && m->term > self->term)
        s_become_follower(self, m->term, QKV_CORE_NOBODY, now);
    bool can =
        m->term >= self->term && !foreign && !self->stopped &&
        (self->vote == QKV_CORE_PEER + (int)peer ||
         (self->vote == QKV_CORE_NOBODY && self->leader == QKV_CORE_NOBODY) ||
         (m->pre && m->term > self->term));
    uint64_t last_term = s_last_term(self);
    bool up_to_date = m->last_term > last_term ||
                      (m->last_term == last_term &&
                       m->last_index >= qkv_log_last_index(self->log));
    bool grant = can && up_to_date && s_may_vote(self, m);
    qkv_core_msg_t *r = s_emit(self, QKV_MSG_VOTE_ACK, peer);
    if (r) {
        r->pre = m->pre;
        r->granted = grant;
        if (grant && m->pre)
            r->term = m->term; /* as etcd: a refusal carries its own */
    }
    if (!grant)
        return;
    if (self->rejoin_term) {
        self->rejoin_term = self->rejoin_commit = 0; /* a voter again */
        self->dirty = true;
    }
    if (!m->pre) {
        self->vote = QKV_CORE_PEER + (int)peer;
        self->dirty = true;
        s_reset_timer(self, now);
    }
}

static void s_on_vote_ack(qkv_core_t *self, size_t peer, const qkv_msg_t *m,
                          int64_t now) {
    if (m->term > self->term && !(m->pre && m->granted)) {
        s_become_follower(self, m->term, QKV_CORE_NOBODY, now);
        return;
    }
    bool ours =
        m->pre
            ? self->role == QKV_CORE_PRE_CANDIDATE && m->term == self->term + 1
            : self->role == QKV_CORE_CANDIDATE && m->term == self->term;
    if (!ours)
        return;
    uint64_t bit = 1ull << peer;
    if (m->granted)
        self->granted |= bit;
    else
        self->refused |= bit;
    s_tally(self, now);
}

int qkv_core_step_vote(qkv_core_t *self, size_t peer, const qkv_msg_t *m,
                       int64_t now) {
    if (!self->cfg.elections || peer >= self->cfg.peer_count)
        return QKV_MALFORMED;
    if (m->type == QKV_MSG_VOTE)
        s_on_vote(self, peer, m, now);
    else if (m->type == QKV_MSG_VOTE_ACK)
        s_on_vote_ack(self, peer, m, now);
    else if (m->type != QKV_MSG_TIMEOUT_NOW)
        return QKV_MALFORMED;
    else if (self->role == QKV_CORE_FOLLOWER && m->term == self->term &&
             self->leader == QKV_CORE_PEER + (int)peer && qkv_core_voter(self))
        s_campaign(self, false, true, now); /* the leader hands over */
    return 0;
}

int qkv_core_transfer(qkv_core_t *self, size_t peer, int64_t now) {
    if (!self->cfg.elections || self->role != QKV_CORE_LEADER ||
        peer >= self->cfg.peer_count)
        return QKV_CORE_NOT_LEADER;
    if (self->peers[peer].match < self->commit ||
        now - self->peers[peer].last_ack_us > self->cfg.election_us)
        return QKV_CORE_BEHIND;
    self->transferring = true;
    self->transfer_peer = peer;
    self->transfer_until_us = now + self->cfg.election_us;
    self->timeout_sent_us = 0;
    return 0;
}

bool qkv_core_transferring(const qkv_core_t *self) {
    return self->transferring;
}

/* Leader: a handover waits for its peer to hold the last entry, then
   sends TIMEOUT_NOW, again every heartbeat (one may be lost: a link just
   reconnecting; a second one of the same term is ignored); given up after
   an election timeout. */
static void s_leader_transfer(qkv_core_t *self, int64_t now) {
    if (!self->transferring)
        return;
    if (now >= self->transfer_until_us) {
        self->transferring = false;
        return;
    }
    size_t p = self->transfer_peer;
    if ((self->timeout_sent_us &&
         now - self->timeout_sent_us < self->cfg.heartbeat_us) ||
        self->peers[p].match < qkv_log_last_index(self->log))
        return;
    if (s_emit(self, QKV_MSG_TIMEOUT_NOW, p))
        self->timeout_sent_us = now;
}

bool qkv_core_heard(qkv_core_t *self, size_t peer, uint64_t term, int64_t now) {
    if (!self->cfg.elections)
        return true;
    if (peer >= self->cfg.peer_count || term < self->term ||
        (self->role == QKV_CORE_LEADER && term == self->term))
        return false;
    s_become_follower(self, term, QKV_CORE_PEER + (int)peer, now);
    s_reset_timer(self, now);
    self->heard_us = now;
    return true;
}

/* The timers of elections: a campaign when no leader was heard, a step
   down when a leader no longer hears a quorum. */
static void s_elections_tick(qkv_core_t *self, int64_t now) {
    int64_t t = self->cfg.election_us;
    if (self->role == QKV_CORE_LEADER) {
        if (now < self->check_due_us)
            return;
        size_t heard = 1;
        for (size_t i = 0; i < self->cfg.peer_count; i++)
            heard += self->peers[i].last_ack_us &&
                     now - self->peers[i].last_ack_us <= t;
        if (heard < s_hold_quorum(self))
            s_become_follower(self, self->term, QKV_CORE_NOBODY, now);
        else
            self->check_due_us = now + t;
        return;
    }
    if (!self->timer_set) {
        s_reset_timer(self, now);
        if (self->cfg.campaign_at_start)
            self->elect_due_us = now;
        else if (self->empty)
            self->elect_due_us += 3 * t; /* a new cluster: the node asked to
                                            lead (ROLE=leader) may start a
                                            little later and still win */
    }
    if (now < self->elect_due_us)
        return;
    if (!qkv_core_voter(self)) {
        s_reset_timer(self, now); /* may not lead yet: waits for a leader */
        return;
    }
    s_campaign(self, true, false, now);
}

/* The read lease: the (N - E)-th newest time peers echoed, plus T less a
   tenth for the drift of clocks. */
static void s_leader_lease(qkv_core_t *self) {
    size_t need = s_hold_quorum(self) - 1;
    if (need == 0) {
        self->lease_until_us = INT64_MAX; /* no election can do without it */
        return;
    }
    int64_t echo[QKV_CORE_MAX_PEERS];
    size_t n = 0;
    for (size_t i = 0; i < self->cfg.peer_count; i++) {
        size_t j = n++;
        for (; j > 0 && echo[j - 1] < self->peers[i].echo_us; j--)
            echo[j] = echo[j - 1]; /* descending */
        echo[j] = self->peers[i].echo_us;
    }
    int64_t start = echo[need - 1];
    int64_t t = self->cfg.election_us;
    self->lease_until_us = start ? start + t - t / 10 : 0;
}

/*  =====================================================================
    Both */

void qkv_core_durable_to(qkv_core_t *self, uint64_t index) {
    uint64_t last = qkv_log_last_index(self->log);
    if (index > last)
        index = last;
    if (index <= self->durable)
        return;
    self->durable = index;
    /* a follower whose ACK waited for the disk owes it now */
    if (self->role == QKV_CORE_FOLLOWER && !self->stopped &&
        self->verified > self->acked && self->owed_count == 0)
        s_owe(self,
              self->leader >= QKV_CORE_PEER
                  ? (size_t)(self->leader - QKV_CORE_PEER)
                  : 0,
              true, self->verified, 0, 0);
}

void qkv_core_applied_to(qkv_core_t *self, uint64_t index) {
    if (index <= self->applied)
        return;
    self->applied = index;
}

/* The leader's running sums of wire bytes, for the entries of log. */
static int s_rebuild_cum(qkv_core_t *self, const qkv_log_t *log) {
    uint64_t first = qkv_log_first_index(log), last = qkv_log_last_index(log);
    qkv_ring_truncate(&self->cum, 0);
    uint64_t *base = qkv_ring_push(&self->cum);
    if (!base)
        return -1;
    *base = 0;
    uint64_t sum = 0;
    for (uint64_t i = first; i <= last; i++) {
        uint64_t *cum = qkv_ring_push(&self->cum);
        if (!cum)
            return -1;
        sum += qkv_entry_wire_size(qkv_log_get(log, i));
        *cum = sum;
    }
    return 0;
}

int qkv_core_restore(qkv_core_t *self, qkv_log_t **log_p) {
    qkv_log_t *log = *log_p;
    uint64_t first = qkv_log_first_index(log), last = qkv_log_last_index(log);
    if (s_rebuild_cum(self, log) != 0)
        return -1;
    const qkv_entry_t *tail = qkv_log_get(log, last);
    if (tail)
        self->last_time = tail->time_ms;
    qkv_log_destroy(&self->log);
    self->log = log;
    *log_p = NULL;
    self->commit = self->applied = first - 1;
    self->durable = last;
    for (size_t i = 0; i < self->cfg.peer_count; i++)
        self->peers[i].next = last + 1;
    return 0;
}

void qkv_core_compact(qkv_core_t *self, uint64_t index) {
    uint64_t first = qkv_log_first_index(self->log);
    if (index > self->applied)
        index = self->applied;
    if (index < first)
        return;
    size_t n = (size_t)(index - first + 1);
    qkv_log_forget(self->log, index);
    if (self->role == QKV_CORE_LEADER)
        qkv_ring_pop(&self->cum, n); /* else rebuilt when it leads */
}

void qkv_core_install(qkv_core_t *self, uint64_t cluster_id,
                      uint64_t leader_term, uint64_t index, uint64_t term) {
    qkv_log_reset(self->log, index, term);
    if (cluster_id != self->cluster_id)
        self->dirty = true;
    self->cluster_id = cluster_id;
    self->empty = false;
    if (leader_term > self->term) {
        self->term = leader_term; /* its ACK must not look stale */
        self->vote = QKV_CORE_NOBODY;
        self->dirty = true;
    }
    self->commit = self->applied = self->durable = index;
    self->verified = self->acked = index;
    self->stopped = false;
    self->error[0] = '\0';
    self->owed_count = 0;
    s_owe(self,
          self->leader >= QKV_CORE_PEER ? (size_t)(self->leader - QKV_CORE_PEER)
                                        : 0,
          true, index, 0, 0);
}

uint64_t qkv_core_take_truncation(qkv_core_t *self) {

    uint64_t t = self->truncated;
    self->truncated = 0;
    return t;
}

bool qkv_core_serving(const qkv_core_t *self) {
    return self->role != QKV_CORE_LEADER ||
           (self->term_first && self->commit >= self->term_first);
}

void qkv_core_fail(qkv_core_t *self, const char *why) {
    self->stopped = true;
    self->owed_count = 0;
    snprintf(self->error, sizeof(self->error), "%s", why);
}

static void s_elections_tick(qkv_core_t *self, int64_t now);
static void s_leader_lease(qkv_core_t *self);

void qkv_core_ready(qkv_core_t *self, int64_t now, qkv_core_ready_t *rd) {
    s_outbox_fresh(self); /* votes answered during the turn stay in it */
    if (self->cfg.elections)
        s_elections_tick(self, now); /* into the outbox of this turn */
    if (self->role == QKV_CORE_LEADER) {
        s_leader_commit(self, now);
        for (size_t i = 0; i < self->cfg.peer_count; i++)
            s_leader_peer(self, i, now);
        if (self->cfg.elections) {
            s_leader_lease(self);
            s_leader_transfer(self, now);
        }
    } else if (!self->stopped) {
        s_follower_acks(self, now);
    }
    uint64_t last = qkv_log_last_index(self->log);
    rd->msgs = (const qkv_core_msg_t *)self->out.data;
    rd->msg_count = self->out.count;
    rd->apply_to = self->commit < last ? self->commit : last;
    if (rd->apply_to < self->applied)
        rd->apply_to = self->applied;
    rd->reset = self->reset;
    self->reset = false;
    rd->persist = self->dirty;
    self->dirty = false;
    self->out_taken = true;
}

static int64_t s_min_due(int64_t a, int64_t b) {
    return !a ? b : !b ? a : a < b ? a : b;
}

int64_t qkv_core_next_due(const qkv_core_t *self) {
    if (self->cfg.elections && self->role != QKV_CORE_LEADER)
        return self->timer_set ? self->elect_due_us : 1;
    if (self->role != QKV_CORE_LEADER)
        return 0;
    int64_t due = self->cfg.elections ? self->check_due_us : 0;
    if (self->transferring)
        due = s_min_due(due, self->timeout_sent_us ? self->timeout_sent_us +
                                                         self->cfg.heartbeat_us
                                                   : self->transfer_until_us);
    int64_t resend = self->cfg.resend_us;
    for (size_t i = 0; i < self->cfg.peer_count; i++) {
        const s_progress_t *p = &self->peers[i];
        if (p->snapshot) {
            due = s_min_due(due, p->snapshot_us + S_SNAPSHOT_PATIENCE * resend);
            continue;
        }
        due = s_min_due(due, p->last_send_us + self->cfg.heartbeat_us);
        if (p->commit_sent < self->commit)
            due = s_min_due(due, self->commit_us + self->cfg.commit_notify_us);

        if (p->probing && p->paused)
            due = s_min_due(due, p->probe_sent_us + resend);
        if (!p->probing && p->inflight && p->next - 1 > p->match) {
            int64_t since = p->inflight_since_us > p->last_progress_us
                                ? p->inflight_since_us
                                : p->last_progress_us;
            due = s_min_due(due, since + resend + 1);
        }
    }
    return due;
}

/*  =====================================================================
    State */

bool qkv_core_is_leader(const qkv_core_t *self) {
    return self->role == QKV_CORE_LEADER;
}

qkv_core_role_t qkv_core_role(const qkv_core_t *self) {
    return self->role;
}

int qkv_core_leader(const qkv_core_t *self) {
    return self->leader;
}

void qkv_core_hard(const qkv_core_t *self, qkv_core_hard_t *hard) {
    hard->cluster_id = self->cluster_id;
    hard->term = self->term;
    hard->vote = self->vote;
    hard->rejoin_term = self->rejoin_term;
    hard->rejoin_commit = self->rejoin_commit;
}

bool qkv_core_voter(const qkv_core_t *self) {
    return self->cfg.elections && !self->stopped &&
           !(self->empty && self->cluster_seen) &&
           !(self->rejoin_term && self->durable < self->rejoin_commit);
}

int64_t qkv_core_lease_until(const qkv_core_t *self) {
    if (self->role != QKV_CORE_LEADER || !qkv_core_serving(self))
        return 0;
    return self->cfg.elections ? self->lease_until_us : INT64_MAX;
}

bool qkv_core_lease(const qkv_core_t *self, int64_t now) {
    return now < qkv_core_lease_until(self);
}

uint64_t qkv_core_cluster_id(const qkv_core_t *self) {
    return self->cluster_id;
}

uint64_t qkv_core_term(const qkv_core_t *self) {
    return self->term;
}

uint64_t qkv_core_last_index(const qkv_core_t *self) {
    return qkv_log_last_index(self->log);
}

uint64_t qkv_core_commit_index(const qkv_core_t *self) {
    return self->commit;
}

uint64_t qkv_core_applied_index(const qkv_core_t *self) {
    return self->applied;
}

uint64_t qkv_core_durable_index(const qkv_core_t *self) {
    return self->durable;
}

const char *qkv_core_error(const qkv_core_t *self) {
    return self->error;
}

void qkv_core_peer(const qkv_core_t *self, size_t i, qkv_core_peer_t *peer) {
    const s_progress_t *p = &self->peers[i];
    peer->match = p->match;
    peer->next = p->next;
    peer->probing = p->probing;
    peer->snapshot = p->snapshot;
    peer->snapshot_us = p->snapshot_us;
    peer->last_ack_us = p->last_ack_us;
}
