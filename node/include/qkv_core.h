/*  qkv_core.h - the replication core: every rule of replication, and no
    socket, clock or disk.

    The core is the leader's or a follower's half of the protocol in
    proto/PROTOCOL.md as a state machine, after etcd-io/raft's raft.go and
    log.go. It takes events - entries proposed, an ACK or APPEND received,
    a send that failed, entries made durable, entries applied - and, once
    per turn of the actor, qkv_core_ready says what to do: the messages to
    send to whom, and up to which index committed entries may be applied.
    Time comes in as an argument, never from a clock, so the rules are
    tested table-driven without processes (tests/unit/test_core.c).

    The rules, in short (the design essay is at the top of qkv_core.c):
    - The leader numbers entries and stamps them with its term; an APPEND
      carries (prev_index, prev_term), entries and the commit index.
    - A follower keeps an APPEND only when its log holds prev_index with
      prev_term; it drops a conflicting suffix (never a committed entry)
      and acknowledges the end of the prefix it verified against this
      APPEND, capped by what it holds durably. A refusal carries a
      walk-back hint: the follower's last (index, term) at or below the
      refused prev_index.
    - A peer's match index is only ever an index it verified. The commit
      index is the write_quorum-th highest match, capped by the leader's
      own durable index, and only advances to an entry of the leader's
      current term. It never goes down.
    - Per peer, as etcd's Progress: REPLICATE streams batches within a
      byte window; PROBE sends one APPEND and waits for its answer (or a
      resend interval). A refusal, a failed send, or in-flight entries
      unacknowledged for a resend interval move a peer to PROBE from its
      match index + 1.
    - Every peer hears from the leader at least every heartbeat. A new
      commit index rides on the next APPEND with entries; a peer that gets
      none is told by an APPEND without entries commit_notify_us after
      the leader learned it.
    - A follower applies only what is committed and verified in the
      current term.
    - With elections (PEERS), every node starts as a follower; one that
      hears no leader for a randomized election timeout asks for
      pre-votes, then votes (Raft section 5.2 with etcd's pre-vote and
      check quorum), with DESIGN's flexible quorums: a write commits on
      W = write_quorum + 1 nodes and an election needs E = max(N - q,
      floor(N/2) + 1) votes, so every election meets every commit. Term
      and vote must be durable before any message of the turn leaves
      (ready.persist). A leader that hears from fewer than N - E + 1 nodes
      (itself included) within an election timeout steps down; a node
      that heard from a live leader within the minimum election timeout
      refuses votes; a leader reads under a lease that N - E + 1 nodes
      granted by acknowledging its APPENDs.

    Invariants: applied <= commit <= last index; durable <= last index.
    Not thread-safe: the replication actor is its only user.
*/
#ifndef QKV_CORE_H
#define QKV_CORE_H

#include "qkv_log.h"
#include "qkv_msg.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QKV_CORE_MAX_PEERS 64

/* Who a node voted for, or whom it follows: nobody, itself, or peer p as
   p + QKV_CORE_PEER. */
#define QKV_CORE_NOBODY 0
#define QKV_CORE_SELF (-1)
#define QKV_CORE_PEER 1

typedef enum {
    QKV_CORE_FOLLOWER = 0,
    QKV_CORE_PRE_CANDIDATE, /* asking for pre-votes: would it win? */
    QKV_CORE_CANDIDATE,     /* asking for votes in a new term */
    QKV_CORE_LEADER
} qkv_core_role_t;

typedef struct {
    bool leader;         /* true: leads; false: follows */
    size_t peer_count;   /* leader: its followers (<= QKV_CORE_MAX_PEERS) */
    size_t write_quorum; /* leader: follower copies a commit needs */
    uint64_t cluster_id; /* leader: the cluster it leads (non-zero);
                            follower: the one its data belongs to, or 0
                            to learn it from the first APPEND */
    uint64_t term;       /* leader: its term (>= 1, above every term in
                            its log); follower: the highest it saw */

    int64_t heartbeat_us;     /* leader: a message to every peer this often */
    int64_t resend_us;        /* leader: silence after which a peer is probed
                                 again; covers a round trip */
    size_t batch_bytes;       /* leader: entry bytes per APPEND (at least one
                                 entry goes whatever its size) */
    size_t window_bytes;      /* leader: entry bytes in flight per peer */
    int64_t commit_notify_us; /* leader: a peer not told of a commit by an
                                 APPEND with entries hears of it this long
                                 after the leader learned it (0: at once) */
    int64_t ack_repeat_us;    /* follower: an ACK equal to the last one sent is
                                 left out within this time */
    bool adopt_clusters;      /* follower: an APPEND of another cluster replaces
                                 whatever it holds (memory only, or
                                 DROP_FOREIGN_DATA); else it is refused */

    /* Elections (PEERS). Off: the roles above hold for ever. On: leader
       must be false; peer_count is every other node (N - 1), and
       write_quorum the follower copies a commit needs (q). */
    bool elections;
    int64_t election_us;    /* T: a follower that hears no leader for a
                               time drawn from [T, 2T) campaigns; leases
                               and check quorum count in T */
    uint64_t seed;          /* for those draws and a new cluster id */
    bool campaign_at_start; /* bootstrap preference (ROLE=leader): ask
                               for votes at the first turn */
    int vote;               /* persisted vote in term (QKV_CORE_NOBODY,
                               QKV_CORE_SELF or QKV_CORE_PEER + p) */
    bool empty;             /* started with no data: until it rejoins a
                               cluster it votes only for a candidate that
                               has none either (bootstrap) */
    uint64_t rejoin_term;   /* persisted: rejoining after an empty start,
                               it votes only in a term above this ... */
    uint64_t rejoin_commit; /* ... once it applied up to here; 0 and 0:
                               a voter */
} qkv_core_config_t;

/* What must be durable (fsynced whatever FSYNC says) before the messages
   of a turn leave, when ready.persist says it changed. */
typedef struct {
    uint64_t cluster_id;
    uint64_t term;
    int vote;               /* in term; QKV_CORE_NOBODY, SELF or PEER + p */
    uint64_t rejoin_term;   /* see qkv_core_config_t */
    uint64_t rejoin_commit; /* rejoining while rejoin_term > 0 */
} qkv_core_hard_t;

/* One message to send. */
typedef struct {
    int type;    /* QKV_MSG_APPEND, QKV_MSG_ACK, QKV_MSG_SNAPSHOT (send
                    the peer a snapshot of the state machine), QKV_MSG_VOTE
                    or QKV_MSG_VOTE_ACK */
    size_t peer; /* 0 .. peer_count - 1; a static follower answers 0 */
    uint64_t cluster_id;
    uint64_t term;
    /* APPEND */
    uint64_t prev_index;
    uint64_t prev_term;
    uint64_t commit_index;
    uint64_t first, last; /* entries first .. last of the log; none when
                             first > last */
    int64_t sent_us;      /* the leader's clock as it sent: echoed back */
    /* ACK */
    bool ok;
    uint64_t index;
    uint64_t hint_index;
    uint64_t hint_term;
    int64_t echo_us; /* the newest sent_us the follower received */
    /* VOTE (last_index, last_term: the candidate's log) and VOTE_ACK */
    bool pre;      /* a pre-vote: would the peer vote in term? */
    bool transfer; /* VOTE: on the leader's TIMEOUT_NOW (a handover) */
    bool granted;  /* VOTE_ACK: yes */
    uint64_t last_index, last_term;
} qkv_core_msg_t;

/* What to do after a turn of events. */
typedef struct {
    const qkv_core_msg_t *msgs; /* in order; valid until the next call */
    size_t msg_count;
    uint64_t apply_to; /* apply committed entries up to this index */
    bool reset;        /* follower: it now follows another cluster; its log is
                          empty: drop the store and the sessions (applied is 0) */
    bool persist;      /* the hard state (qkv_core_hard) changed: make it
                          durable before sending msgs */
} qkv_core_ready_t;

/* A peer as the leader sees it. */
typedef struct {
    uint64_t match;      /* highest index verified on the peer */
    uint64_t next;       /* next index to send it */
    bool probing;        /* in PROBE: one APPEND at a time */
    bool snapshot;       /* a snapshot is on its way to it */
    int64_t snapshot_us; /* ... asked for then */
    int64_t last_ack_us; /* time of its last ACK; 0 = never */
} qkv_core_peer_t;

typedef struct qkv_core_t qkv_core_t;

/* Returns a core for cfg (copied) with an empty log, or NULL when out of
   memory or cfg is inconsistent (a leader without cluster_id or term, a
   quorum above its peers, too many peers). */
qkv_core_t *qkv_core_new(const qkv_core_config_t *cfg);
/* Destroys the core and its log; nulls *self_p; safe on NULL. */
void qkv_core_destroy(qkv_core_t **self_p);

/* The log, for reading entries (encoding, applying). Owned by the core;
   only the core changes it. */
const qkv_log_t *qkv_core_log(const qkv_core_t *self);

/*  ---------------------------------------------------------------------
    Events */

/* Leader: logs *entry_p with the next index and the leader's term, its
   time_ms raised to the previous entry's if lower, and takes it (nulls
   *entry_p). Returns the index, or 0 when out of memory or not the
   leader (the entry stays the caller's). */
uint64_t qkv_core_propose(qkv_core_t *self, qkv_entry_t **entry_p);

/* Leader: an ACK from peer. Returns 0, or QKV_MALFORMED when it cannot
   be from this cluster's follower (another cluster id, a higher term, an
   index beyond the log); it then changes nothing. */
int qkv_core_step_ack(qkv_core_t *self, size_t peer, const qkv_msg_t *ack,
                      int64_t now);

/* Leader: a message to peer could not be queued (peer absent, queue
   full): it is probed again after a resend interval. */
void qkv_core_send_failed(qkv_core_t *self, size_t peer, int64_t now);

/* Follower: an APPEND from the leader, peer (a static follower: 0).
   Returns 0, or -1 when the follower had to stop (out of memory holding
   entries, or the leader contradicts a committed entry): it then
   acknowledges nothing more and qkv_core_error says why. With elections,
   a leader or candidate that hears of a leader of its term or a later
   one follows it. */
int qkv_core_step_append(qkv_core_t *self, size_t peer, const qkv_msg_t *append,
                         int64_t now);

/* Elections: a VOTE request, a VOTE_ACK or a TIMEOUT_NOW from peer.
   Returns 0, or QKV_MALFORMED for a message elections do not expect
   (they are off, or peer is unknown). */
int qkv_core_step_vote(qkv_core_t *self, size_t peer, const qkv_msg_t *m,
                       int64_t now);

/* Elections, leader: hands leadership to peer. The peer must be a voter
   whose log reaches the commit index (else QKV_CORE_BEHIND); proposals
   are refused while it catches up to the last entry, then it gets
   TIMEOUT_NOW and asks for votes at once, which no node's lease holds
   back. Given up after an election timeout (qkv_core_transferring turns
   false). Returns 0, QKV_CORE_NOT_LEADER or QKV_CORE_BEHIND. */
#define QKV_CORE_NOT_LEADER (-1)
#define QKV_CORE_BEHIND (-2)
int qkv_core_transfer(qkv_core_t *self, size_t peer, int64_t now);
/* A handover is under way: proposals are refused. */
bool qkv_core_transferring(const qkv_core_t *self);

/* Elections: a message of the current leader that the core does not step
   (a SNAPSHOT chunk) came from peer at term: a follower learns of the
   leader as from an APPEND. Returns false when it must be ignored (an
   older term's), true otherwise. */
bool qkv_core_heard(qkv_core_t *self, size_t peer, uint64_t term, int64_t now);

/* Entries up to index (at most the last) are held as FSYNC promises. */
void qkv_core_durable_to(qkv_core_t *self, uint64_t index);

/* The state machine applied entries up to index (at most apply_to). A
   follower drops them from its log. */
void qkv_core_applied_to(qkv_core_t *self, uint64_t index);

/* Before any event: replaces the empty log with log (recovered from
   disk; taken, *log_p nulled). Its entries count as durable; commit and
   applied are the index before its first entry (the snapshot's).
   Returns 0, or -1 when out of memory. */
int qkv_core_restore(qkv_core_t *self, qkv_log_t **log_p);

/* Follower: the state machine now holds a snapshot of cluster_id up to
   index (whose entry had term), sent by a leader of leader_term: the log
   goes on after it, everything up to it counts as committed, applied and
   durable, the node takes leader_term when it is higher, and an ACK of
   index is owed. */
void qkv_core_install(qkv_core_t *self, uint64_t cluster_id,
                      uint64_t leader_term, uint64_t index, uint64_t term);

/* Drops the entries up to index (at most applied) from the log in
   memory: a snapshot holds them now. A peer that needs one of them later
   gets a QKV_MSG_SNAPSHOT message: the actor sends it a snapshot. */
void qkv_core_compact(qkv_core_t *self, uint64_t index);

/* The lowest index the follower dropped from its log since the last call
   (a conflicting suffix), or 0: the write-ahead log must forget them. */
uint64_t qkv_core_take_truncation(qkv_core_t *self);

/* The state machine cannot apply entry index: the follower stops
   acknowledging (a leader keeps its commit index) and says why. */
void qkv_core_fail(qkv_core_t *self, const char *why);

/*  ---------------------------------------------------------------------
    Output */

/* Ends a turn: advances the commit index, decides what to send now and
   fills *ready. Call it after the turn's events (and after reporting what
   became durable), then send and apply before the next events. */
void qkv_core_ready(qkv_core_t *self, int64_t now, qkv_core_ready_t *ready);

/* When time alone next gives qkv_core_ready something to do (a
   heartbeat, a probe, a resend check), or 0 for never. */
int64_t qkv_core_next_due(const qkv_core_t *self);

/*  ---------------------------------------------------------------------
    State */

bool qkv_core_is_leader(const qkv_core_t *self);
qkv_core_role_t qkv_core_role(const qkv_core_t *self);
/* Whom it follows: QKV_CORE_NOBODY (unknown), QKV_CORE_SELF, or
   QKV_CORE_PEER + p. */
int qkv_core_leader(const qkv_core_t *self);
/* What ready.persist asks to make durable. */
void qkv_core_hard(const qkv_core_t *self, qkv_core_hard_t *hard);
/* The election quorum E (candidate included) and N - E + 1, the nodes a
   leader must hear from (itself included) to keep leading. */
size_t qkv_core_election_quorum(const qkv_core_t *self);
/* Elections: the node may vote and campaign (in a term above any it
   rejoined in): false while it stopped, or started empty and waits for a
   leader, or rejoins and does not yet hold that leader's commit index. */
bool qkv_core_voter(const qkv_core_t *self);
/* A leader may answer a read now: it serves, and (with elections) its
   lease holds at now. */
bool qkv_core_lease(const qkv_core_t *self, int64_t now);
/* ... the instant its lease ends (INT64_MAX without elections); 0 when it
   may not read at all (not leading, or its term not started). */
int64_t qkv_core_lease_until(const qkv_core_t *self);
uint64_t qkv_core_cluster_id(const qkv_core_t *self);
uint64_t qkv_core_term(const qkv_core_t *self);
uint64_t qkv_core_last_index(const qkv_core_t *self);
uint64_t qkv_core_commit_index(const qkv_core_t *self);
uint64_t qkv_core_applied_index(const qkv_core_t *self);
uint64_t qkv_core_durable_index(const qkv_core_t *self);
/* Leader: the first entry of its term has committed (until then it
   holds writes and serves no read); a follower: always true. */
bool qkv_core_serving(const qkv_core_t *self);
/* Why the follower stopped acknowledging; "" while it has not. */
const char *qkv_core_error(const qkv_core_t *self);
/* Leader: the state of peer i. */
void qkv_core_peer(const qkv_core_t *self, size_t i, qkv_core_peer_t *peer);

#endif
