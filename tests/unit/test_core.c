/*  test_core.c - the replication core (node/include/qkv_core.h), without
    processes: events in, messages and apply indexes out, the way
    etcd-io/raft's raft_test.go and log_test.go test raft.go and log.go.

    Tables of follower logs and APPENDs (log matching: keep, skip,
    conflict, refuse with a hint, the verified prefix, commit capping,
    terms, other clusters, a prefix already applied); the commit rule over
    match indexes, quorums and the leader's durable index; per-peer
    progress (batches and the window, probing after a refusal, a stale
    refusal, a peer that lost its data, failed sends, stalls, heartbeats
    and commit news); ACK coalescing; and a simulated cluster with lost
    messages and wiped followers whose logs must end equal to the
    leader's, never committing what fewer than the quorum hold. With logs
    restored as from disk: the Raft paper's figure 7 (a leader of term 8
    brings each possible follower log to its own in a few round trips:
    refusal hints skip a term at a time on both sides) and figure 8 (an
    older term's entry held by a quorum commits only with one of the
    leader's own term); a follower behind a compacted log gets a snapshot,
    and an installed snapshot continues the log.
*/
#include "kit.h"
#include "qkv_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLUSTER 7
#define HB 100000     /* heartbeat, us */
#define RESEND 200000 /* resend interval, us */

/*  ---------------------------------------------------------------------
    Helpers */

static qkv_core_config_t s_leader_config(size_t peers, size_t quorum,
                                         size_t batch, size_t window) {
    return (qkv_core_config_t){.leader = true,
                               .peer_count = peers,
                               .write_quorum = quorum,
                               .cluster_id = CLUSTER,
                               .term = 1,
                               .heartbeat_us = HB,
                               .resend_us = RESEND,
                               .batch_bytes = batch,
                               .window_bytes = window,
                               .ack_repeat_us = 10000};
}

static qkv_core_t *s_leader(size_t peers, size_t quorum, size_t batch,
                            size_t window) {
    qkv_core_config_t cfg = s_leader_config(peers, quorum, batch, window);
    qkv_core_t *core = qkv_core_new(&cfg);
    CU_ASSERT_FATAL(core != NULL);
    return core;
}

static qkv_core_t *s_follower(void) {
    qkv_core_config_t cfg = {.heartbeat_us = HB,
                             .resend_us = RESEND,
                             .ack_repeat_us = 10000,
                             .adopt_clusters = true};
    qkv_core_t *core = qkv_core_new(&cfg);
    CU_ASSERT_FATAL(core != NULL);
    return core;
}

/* Proposes a PUT of key=value (10 bytes of value) and returns its index. */
static uint64_t s_propose(qkv_core_t *core, const char *key) {
    qkv_entry_t *e =
        qkv_entry_new(QKV_OP_PUT, key, strlen(key), "0123456789", 10);
    CU_ASSERT_FATAL(e != NULL);
    uint64_t index = qkv_core_propose(core, &e);
    CU_ASSERT(index > 0 && e == NULL);
    free(e);
    return index;
}

/* The leader's own copy is durable at once (the in-memory log). */
static void s_ready(qkv_core_t *core, int64_t now, qkv_core_ready_t *rd) {
    qkv_core_durable_to(core, qkv_core_last_index(core));
    qkv_core_ready(core, now, rd);
}

static qkv_msg_t s_ack(bool ok, uint64_t index, uint64_t hint_index,
                       uint64_t hint_term) {
    qkv_msg_t m;
    memset(&m, 0, sizeof(m));
    m.type = QKV_MSG_ACK;
    m.version = QKV_REPL_VERSION;
    m.cluster_id = CLUSTER;
    m.term = 1;
    m.ok = ok;
    m.index = index;
    m.hint_index = hint_index;
    m.hint_term = hint_term;
    return m;
}

/* The APPENDs for peer in rd, at most max, in order; returns how many. */
static size_t s_appends(const qkv_core_ready_t *rd, size_t peer,
                        const qkv_core_msg_t **out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < rd->msg_count; i++)
        if (rd->msgs[i].type == QKV_MSG_APPEND && rd->msgs[i].peer == peer &&
            n < max)
            out[n++] = &rd->msgs[i];
    return n;
}

/* Entries an APPEND carries. */
static uint64_t s_count(const qkv_core_msg_t *m) {
    return m->last >= m->first ? m->last - m->first + 1 : 0;
}

/* An APPEND as the follower receives it: entries of the given terms after
   (prev, prev_term), from a leader of term. */
typedef struct {
    qkv_msg_t msg;
    qkv_entry_view_t views[16];
} s_append_t;

static void s_make_append(s_append_t *a, uint64_t cluster, uint64_t term,
                          uint64_t prev, uint64_t prev_term,
                          const uint64_t *terms, size_t n, uint64_t commit) {
    memset(a, 0, sizeof(*a));
    a->msg.type = QKV_MSG_APPEND;
    a->msg.version = QKV_REPL_VERSION;
    a->msg.cluster_id = cluster;
    a->msg.term = term;
    a->msg.prev_index = prev;
    a->msg.prev_term = prev_term;
    a->msg.commit_index = commit;
    a->msg.entry_count = n;
    a->msg.entries = a->views;
    for (size_t i = 0; i < n; i++)
        a->views[i] =
            (qkv_entry_view_t){terms[i], 0, 0, 0, QKV_OP_PUT, "k", 1, "v", 1};
}

/* The follower's one ACK after a turn, or NULL when it sent none. */
static const qkv_core_msg_t *s_follower_ack(qkv_core_t *f, int64_t now,
                                            qkv_core_ready_t *rd) {
    s_ready(f, now, rd);
    CU_ASSERT(rd->msg_count <= 1);
    return rd->msg_count ? &rd->msgs[rd->msg_count - 1] : NULL;
}

/* The terms of the follower's log, index 1 .. last, into a string like
   "1 1 2" (entries it dropped as applied show as "."). */
static void s_log_terms(const qkv_core_t *core, char *out, size_t size) {
    const qkv_log_t *log = qkv_core_log(core);
    size_t at = 0;
    out[0] = '\0';
    for (uint64_t i = 1; i <= qkv_log_last_index(log) && at < size; i++) {
        const qkv_entry_t *e = qkv_log_get(log, i);
        int n = e ? snprintf(out + at, size - at, "%s%llu", at ? " " : "",
                             (unsigned long long)e->term)
                  : snprintf(out + at, size - at, "%s.", at ? " " : "");
        at += n > 0 ? (size_t)n : 0;
    }
}

/*  ---------------------------------------------------------------------
    Follower: log matching, table-driven */

typedef struct {
    const char *name;
    uint64_t start[8]; /* terms of the log it starts with (0 ends) */
    uint64_t start_commit;
    /* the APPEND */
    uint64_t cluster, term, prev, prev_term;
    uint64_t entries[8]; /* terms (0 ends) */
    uint64_t commit;
    /* expected */
    int stop; /* 1: it stops acknowledging */
    bool ok;  /* ACK ok, else refused */
    uint64_t ack_index;
    uint64_t hint_index, hint_term;
    const char *log; /* terms after */
    uint64_t commit_after;
    uint64_t ack_term;
} s_match_case_t;

static size_t s_len(const uint64_t *terms) {
    size_t n = 0;
    while (n < 8 && terms[n])
        n++;
    return n;
}

static void s_run_match(const s_match_case_t *c) {
    qkv_core_t *f = s_follower();
    qkv_core_ready_t rd;
    int64_t now = 1000000;
    size_t start = s_len(c->start);
    uint64_t top = 0;
    for (size_t i = 0; i < start; i++)
        top = c->start[i] > top ? c->start[i] : top;
    if (start) {
        s_append_t a;
        s_make_append(&a, CLUSTER, top, 0, 0, c->start, start, c->start_commit);
        CU_ASSERT_EQUAL_FATAL(qkv_core_step_append(f, 0, &a.msg, now), 0);
        s_follower_ack(f, now, &rd);
        now += 20000;
    }
    s_append_t a;
    s_make_append(&a, c->cluster, c->term, c->prev, c->prev_term, c->entries,
                  s_len(c->entries), c->commit);
    int rc = qkv_core_step_append(f, 0, &a.msg, now);
    const qkv_core_msg_t *ack = s_follower_ack(f, now, &rd);
    char log[128];
    s_log_terms(f, log, sizeof log);
    bool good = true;
    if (c->stop) {
        good = rc == -1 && ack == NULL && qkv_core_error(f)[0] != '\0';
    } else {
        good = rc == 0 && ack && ack->ok == c->ok &&
               ack->index == c->ack_index && strcmp(log, c->log) == 0 &&
               qkv_core_commit_index(f) == c->commit_after &&
               ack->term == c->ack_term;
        if (good && !c->ok)
            good = ack->hint_index == c->hint_index &&
                   ack->hint_term == c->hint_term;
    }
    if (!good)
        fprintf(stderr,
                "\n  %s: rc %d, ack %s ok %d index %llu hint %llu/%llu term "
                "%llu, log \"%s\", commit %llu\n",
                c->name, rc, ack ? "sent" : "none", ack ? ack->ok : -1,
                ack ? (unsigned long long)ack->index : 0,
                ack ? (unsigned long long)ack->hint_index : 0,
                ack ? (unsigned long long)ack->hint_term : 0,
                ack ? (unsigned long long)ack->term : 0, log,
                (unsigned long long)qkv_core_commit_index(f));
    CU_ASSERT(good);
    qkv_core_destroy(&f);
}

static void test_follower_log_matching(void) {
    /* one case per row */
    // clang-format off
    static const s_match_case_t cases[] = {
        {"empty log takes the first entries", {0}, 0,
         CLUSTER, 1, 0, 0, {1, 1}, 0,
         0, true, 2, 0, 0, "1 1", 0, 1},
        {"heartbeat at the end", {1, 1, 1}, 0,
         CLUSTER, 1, 3, 1, {0}, 2,
         0, true, 3, 0, 0, "1 1 1", 2, 1},
        {"gap: prev beyond the log", {1, 1, 1}, 0,
         CLUSTER, 1, 5, 1, {1}, 0,
         0, false, 5, 3, 1, "1 1 1", 0, 1},
        {"prev with another term: walk back", {1, 1, 2}, 0,
         CLUSTER, 3, 3, 3, {3}, 0,
         0, false, 3, 2, 1, "1 1 2", 0, 3},
        {"duplicates are skipped, the verified prefix acked", {1, 1, 1}, 0,
         CLUSTER, 1, 0, 0, {1, 1}, 0,
         0, true, 2, 0, 0, "1 1 1", 0, 1},
        {"an older prefix: ack its end, not the log's", {1, 1, 1, 1}, 0,
         CLUSTER, 1, 1, 1, {1}, 9,
         0, true, 2, 0, 0, "1 1 1 1", 2, 1},
        {"conflict after commit: truncate and append", {1, 1, 2, 2}, 1,
         CLUSTER, 3, 1, 1, {1, 3}, 0,
         0, true, 3, 0, 0, "1 1 3", 1, 3},
        {"conflict at a committed entry: stop", {1, 1, 2}, 3,
         CLUSTER, 3, 1, 1, {1, 3}, 0,
         1, false, 0, 0, 0, "", 0, 0},
        {"commit capped by the verified prefix", {0}, 0,
         CLUSTER, 1, 0, 0, {1, 1}, 10,
         0, true, 2, 0, 0, "1 1", 2, 1},
        {"a lower term is refused with the node's own", {2, 2}, 0,
         CLUSTER, 1, 2, 2, {1}, 0,
         0, false, 2, 2, 2, "2 2", 0, 2},
        {"a higher term is taken", {1, 1}, 0,
         CLUSTER, 4, 2, 1, {4}, 3,
         0, true, 3, 0, 0, "1 1 4", 3, 4},
        {"another cluster: drop everything and follow", {1, 1, 1}, 2,
         CLUSTER + 1, 1, 0, 0, {1}, 1,
         0, true, 1, 0, 0, "1", 1, 1},
        {"another cluster, not from the start: refuse", {1, 1, 1}, 2,
         CLUSTER + 1, 1, 4, 1, {1}, 0,
         0, false, 4, 0, 0, "", 0, 1},
    };
    // clang-format on
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_run_match(&cases[i]);
}

/* Entries compacted away once applied (a snapshot holds them) are gone
   from the log; an APPEND reaching back before them is trimmed to what it
   does not have. Applying alone drops nothing. */
static void test_follower_applied_prefix(void) {
    qkv_core_t *f = s_follower();
    qkv_core_ready_t rd;
    const uint64_t four[] = {1, 1, 1, 1};
    s_append_t a;
    s_make_append(&a, CLUSTER, 1, 0, 0, four, 4, 3);
    CU_ASSERT_EQUAL(qkv_core_step_append(f, 0, &a.msg, 0), 0);
    s_follower_ack(f, 0, &rd);
    CU_ASSERT(rd.apply_to == 3);
    qkv_core_applied_to(f, 3);
    CU_ASSERT(qkv_log_first_index(qkv_core_log(f)) == 1);
    qkv_core_compact(f, 5); /* no further than applied */
    CU_ASSERT(qkv_log_first_index(qkv_core_log(f)) == 4);
    /* the same four again, and two more: only the two are new */
    const uint64_t six[] = {1, 1, 1, 1, 1, 1};
    s_make_append(&a, CLUSTER, 1, 0, 0, six, 6, 6);
    CU_ASSERT_EQUAL(qkv_core_step_append(f, 0, &a.msg, 20000), 0);
    const qkv_core_msg_t *ack = s_follower_ack(f, 20000, &rd);
    CU_ASSERT_FATAL(ack != NULL);
    CU_ASSERT(ack->ok && ack->index == 6);
    CU_ASSERT(qkv_core_last_index(f) == 6);
    CU_ASSERT(rd.apply_to == 6);
    /* entirely below what it applied: acked as verified */
    s_make_append(&a, CLUSTER, 1, 0, 0, four, 2, 6);
    qkv_core_applied_to(f, 6);
    qkv_core_compact(f, 6);
    CU_ASSERT_EQUAL(qkv_core_step_append(f, 0, &a.msg, 40000), 0);
    ack = s_follower_ack(f, 40000, &rd);
    CU_ASSERT_FATAL(ack != NULL);
    CU_ASSERT(ack->ok && ack->index == 2);
    CU_ASSERT(qkv_core_commit_index(f) == 6);
    qkv_core_destroy(&f);
}

/* One ACK per turn says as much as several; an equal one is left out
   within ack_repeat_us; what is not durable is not acknowledged. */
static void test_follower_acks(void) {
    qkv_core_t *f = s_follower();
    qkv_core_ready_t rd;
    const uint64_t one[] = {1};
    s_append_t a;
    for (uint64_t i = 0; i < 3; i++) {
        s_make_append(&a, CLUSTER, 1, i, i ? 1 : 0, one, 1, 0);
        CU_ASSERT_EQUAL(qkv_core_step_append(f, 0, &a.msg, 0), 0);
    }
    const qkv_core_msg_t *ack = s_follower_ack(f, 0, &rd);
    CU_ASSERT_FATAL(ack != NULL);
    CU_ASSERT(ack->ok && ack->index == 3);
    /* a heartbeat 5 ms later repeats it: left out */
    s_make_append(&a, CLUSTER, 1, 3, 1, NULL, 0, 0);
    qkv_core_step_append(f, 0, &a.msg, 5000);
    CU_ASSERT(s_follower_ack(f, 5000, &rd) == NULL);
    /* 20 ms later: sent again (liveness) */
    qkv_core_step_append(f, 0, &a.msg, 20000);
    CU_ASSERT(s_follower_ack(f, 20000, &rd) != NULL);
    /* not durable: the ACK stops at what is (and equal to the last one,
       it is left out) */
    s_make_append(&a, CLUSTER, 1, 3, 1, one, 1, 0);
    qkv_core_step_append(f, 0, &a.msg, 25000);
    qkv_core_ready(f, 25000, &rd); /* nothing reported durable */
    CU_ASSERT_EQUAL_FATAL(rd.msg_count, 0);
    qkv_core_durable_to(f, 4);
    qkv_core_ready(f, 26000, &rd);
    CU_ASSERT_EQUAL_FATAL(rd.msg_count, 1);
    CU_ASSERT(rd.msgs[0].ok && rd.msgs[0].index == 4);
    /* a refusal after an ok in one turn: both, in order */
    s_make_append(&a, CLUSTER, 1, 4, 1, one, 1, 0);
    qkv_core_step_append(f, 0, &a.msg, 60000);
    s_make_append(&a, CLUSTER, 1, 9, 1, one, 1, 0);
    qkv_core_step_append(f, 0, &a.msg, 60000);
    s_ready(f, 60000, &rd);
    CU_ASSERT_EQUAL_FATAL(rd.msg_count, 2);
    CU_ASSERT(rd.msgs[0].ok && rd.msgs[0].index == 5);
    CU_ASSERT(!rd.msgs[1].ok && rd.msgs[1].index == 9 &&
              rd.msgs[1].hint_index == 5);
    qkv_core_destroy(&f);
}

/* The state machine cannot apply: no more ACKs, and it says why. */
static void test_follower_fail(void) {
    qkv_core_t *f = s_follower();
    qkv_core_ready_t rd;
    const uint64_t one[] = {1};
    s_append_t a;
    s_make_append(&a, CLUSTER, 1, 0, 0, one, 1, 1);
    qkv_core_step_append(f, 0, &a.msg, 0);
    qkv_core_fail(f, "out of memory applying index 1");
    CU_ASSERT(s_follower_ack(f, 0, &rd) == NULL);
    KIT_ASSERT_STR(qkv_core_error(f), "out of memory applying index 1");
    qkv_core_destroy(&f);
}

/*  ---------------------------------------------------------------------
    Leader: the commit rule, table-driven */

typedef struct {
    const char *name;
    size_t peers, quorum;
    uint64_t proposed; /* entries logged */
    uint64_t durable;  /* the leader's own durable index */
    uint64_t match[6]; /* acked index per peer */
    uint64_t commit;   /* expected */
} s_commit_case_t;

static void test_commit_rule(void) {
    /* one case per row */
    // clang-format off
    static const s_commit_case_t cases[] = {
        {"quorum 0: the leader's durable copy", 3, 0, 5, 5, {0, 0, 0}, 5},
        {"quorum 0, not durable yet", 3, 0, 5, 2, {5, 5, 5}, 2},
        {"quorum 1: the highest", 3, 1, 9, 9, {5, 3, 9}, 9},
        {"quorum 2: the second highest", 3, 2, 9, 9, {5, 3, 9}, 5},
        {"quorum 3: the lowest", 3, 3, 9, 9, {5, 3, 9}, 3},
        {"capped by the leader's durable index", 3, 1, 9, 4, {9, 9, 9}, 4},
        {"nobody acked", 5, 3, 9, 9, {0, 0, 0, 0, 0}, 0},
        {"ties", 4, 3, 6, 6, {4, 4, 4, 2}, 4},
        {"every follower", 5, 5, 8, 8, {8, 8, 8, 8, 7}, 7},
    };
    // clang-format on
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const s_commit_case_t *c = &cases[i];
        qkv_core_t *l = s_leader(c->peers, c->quorum, 1 << 20, 1 << 20);
        for (uint64_t k = 0; k < c->proposed; k++)
            s_propose(l, "k");
        for (size_t p = 0; p < c->peers; p++) {
            qkv_msg_t ack = s_ack(true, c->match[p], 0, 0);
            CU_ASSERT_EQUAL(qkv_core_step_ack(l, p, &ack, 1), 0);
        }
        qkv_core_durable_to(l, c->durable);
        qkv_core_ready_t rd;
        qkv_core_ready(l, 1, &rd);
        if (qkv_core_commit_index(l) != c->commit)
            fprintf(stderr, "\n  %s: commit %llu, expected %llu\n", c->name,
                    (unsigned long long)qkv_core_commit_index(l),
                    (unsigned long long)c->commit);
        CU_ASSERT_EQUAL(qkv_core_commit_index(l), c->commit);
        CU_ASSERT_EQUAL(rd.apply_to, c->commit);
        qkv_core_destroy(&l);
    }
}

/* The commit index never goes down, even when matches do. */
static void test_commit_never_decreases(void) {
    qkv_core_t *l = s_leader(3, 2, 1 << 20, 1 << 20);
    for (int k = 0; k < 8; k++)
        s_propose(l, "k");
    qkv_core_ready_t rd;
    for (size_t p = 0; p < 3; p++) {
        qkv_msg_t ack = s_ack(true, 8, 0, 0);
        qkv_core_step_ack(l, p, &ack, 1);
    }
    s_ready(l, 1, &rd);
    CU_ASSERT_EQUAL(qkv_core_commit_index(l), 8);
    /* two followers restarted empty: they refuse with hint 0 */
    for (size_t p = 0; p < 2; p++) {
        qkv_msg_t refusal = s_ack(false, 8, 0, 0);
        qkv_core_step_ack(l, p, &refusal, 2);
        qkv_core_peer_t peer;
        qkv_core_peer(l, p, &peer);
        CU_ASSERT(peer.match == 0 && peer.probing);
    }
    s_propose(l, "k");
    s_ready(l, 3, &rd);
    CU_ASSERT_EQUAL(qkv_core_commit_index(l), 8); /* one holds 9: not 2 */
    qkv_msg_t ack = s_ack(true, 9, 0, 0);
    qkv_core_step_ack(l, 2, &ack, 4);
    s_ready(l, 4, &rd);
    CU_ASSERT_EQUAL(qkv_core_commit_index(l), 8);
    qkv_core_step_ack(l, 0, &ack, 5);
    s_ready(l, 5, &rd);
    CU_ASSERT_EQUAL(qkv_core_commit_index(l), 9);
    qkv_core_destroy(&l);
}

/*  ---------------------------------------------------------------------
    Leader: what it sends */

/* Each entry is 1 + 9 + 1 + 5 + 5 + 27 + key(1) + value(10) = 59 bytes on
   the wire by qkv_entry_wire_size. */
#define ENTRY 59

static void test_batches_and_window(void) {
    /* at most 2 entries per APPEND, at most 5 entries in flight */
    qkv_core_t *l = s_leader(1, 1, 2 * ENTRY, 5 * ENTRY);
    for (int k = 0; k < 9; k++)
        s_propose(l, "k");
    qkv_core_ready_t rd;
    s_ready(l, 0, &rd);
    const qkv_core_msg_t *m[8];
    size_t n = s_appends(&rd, 0, m, 8);
    /* 1-2, 3-4, 5-6: the window is full once 6 are in flight */
    CU_ASSERT_EQUAL_FATAL(n, 3);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT(m[i]->prev_index == 2 * i);
        CU_ASSERT(m[i]->first == 2 * i + 1 && s_count(m[i]) == 2);
        CU_ASSERT(m[i]->commit_index == 0 && m[i]->term == 1);
        CU_ASSERT(m[i]->cluster_id == CLUSTER);
    }
    /* nothing more until an ACK opens the window */
    s_ready(l, 1, &rd);
    CU_ASSERT_EQUAL(s_appends(&rd, 0, m, 8), 0);
    qkv_msg_t ack = s_ack(true, 4, 0, 0);
    CU_ASSERT_EQUAL(qkv_core_step_ack(l, 0, &ack, 2), 0);
    s_ready(l, 2, &rd);
    n = s_appends(&rd, 0, m, 8);
    /* 7-8 and 9 (the window allows it), then commit news? commit is 4 and
       the batches carry it */
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT(m[0]->first == 7 && m[0]->last == 8 && m[0]->commit_index == 4);
    CU_ASSERT(m[1]->first == 9 && m[1]->last == 9 && m[1]->commit_index == 4);
    CU_ASSERT_EQUAL(rd.apply_to, 4);
    qkv_core_destroy(&l);
}

static void test_commit_news_and_heartbeats(void) {
    qkv_core_t *l = s_leader(2, 1, 1 << 20, 1 << 20);
    s_propose(l, "k");
    qkv_core_ready_t rd;
    s_ready(l, 0, &rd);
    const qkv_core_msg_t *m[4];
    CU_ASSERT_EQUAL(s_appends(&rd, 0, m, 4), 1);
    CU_ASSERT_EQUAL(s_appends(&rd, 1, m, 4), 1);
    qkv_msg_t ack = s_ack(true, 1, 0, 0);
    qkv_core_step_ack(l, 0, &ack, 10);
    s_ready(l, 10, &rd);
    /* commit 1: both peers are told at once, with no entries */
    for (size_t p = 0; p < 2; p++) {
        CU_ASSERT_EQUAL_FATAL(s_appends(&rd, p, m, 4), 1);
        CU_ASSERT(s_count(m[0]) == 0 && m[0]->commit_index == 1);
        CU_ASSERT(m[0]->prev_index == 1 && m[0]->prev_term == 1);
    }
    /* quiet until a heartbeat is due */
    s_ready(l, 10 + HB - 1, &rd);
    CU_ASSERT_EQUAL(rd.msg_count, 0);
    CU_ASSERT(qkv_core_next_due(l) == 10 + HB);
    s_ready(l, 10 + HB, &rd);
    CU_ASSERT_EQUAL(s_appends(&rd, 0, m, 4), 1);
    CU_ASSERT_EQUAL(s_appends(&rd, 1, m, 4), 1);
    CU_ASSERT(s_count(m[0]) == 0);
    qkv_core_destroy(&l);
}

/* COMMIT_NOTIFY_MS: a commit rides on the next APPEND with entries; a
   peer that gets none hears of it notify_us after the leader learned it,
   never later (next_due says when), and never twice. */
static void test_commit_news_delayed(void) {
    const int64_t notify = 1000;
    static const struct {
        const char *name;
        bool more;     /* a second write comes before the notice is due */
        int64_t at;    /* when the leader next looks (after the commit) */
        size_t bare;   /* APPENDs without entries peer 1 gets then */
        uint64_t told; /* the commit index peer 1 has heard by then */
    } cases[] = {
        {"too early: nothing", false, notify - 1, 0, 0},
        {"due: a bare notice", false, notify, 1, 1},
        {"late: a bare notice", false, notify + 500, 1, 1},
        {"a write rides first", true, notify - 1, 0, 1},
        {"a write rode: nothing more", true, notify, 0, 1},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        qkv_core_config_t cfg = s_leader_config(2, 1, 1 << 20, 1 << 20);
        cfg.commit_notify_us = notify;
        qkv_core_t *l = qkv_core_new(&cfg);
        CU_ASSERT_FATAL(l != NULL);
        s_propose(l, "k");
        qkv_core_ready_t rd;
        s_ready(l, 0, &rd);
        qkv_msg_t ack = s_ack(true, 1, 0, 0);
        qkv_core_step_ack(l, 0, &ack, 10); /* peer 0: commit 1 at 10 */
        s_ready(l, 10, &rd);
        CU_ASSERT_EQUAL(rd.apply_to, 1);
        CU_ASSERT_EQUAL(rd.msg_count, 0); /* nobody is told yet */
        CU_ASSERT(qkv_core_next_due(l) == 10 + notify);
        uint64_t told = 0;
        size_t bare = 0;
        const qkv_core_msg_t *m[4];
        if (cases[c].more) {
            s_propose(l, "k2");
            s_ready(l, 20, &rd);
            CU_ASSERT_EQUAL_FATAL(s_appends(&rd, 1, m, 4), 1);
            CU_ASSERT(s_count(m[0]) == 1 && m[0]->commit_index == 1);
            told = m[0]->commit_index;
        }
        s_ready(l, 10 + cases[c].at, &rd);
        size_t n = s_appends(&rd, 1, m, 4);
        for (size_t i = 0; i < n; i++) {
            bare += s_count(m[i]) == 0;
            if (m[i]->commit_index > told)
                told = m[i]->commit_index;
        }
        if (bare != cases[c].bare || told != cases[c].told)
            fprintf(stderr, "case '%s': %zu bare, told %llu\n", cases[c].name,
                    bare, (unsigned long long)told);
        CU_ASSERT_EQUAL(bare, cases[c].bare);
        CU_ASSERT_EQUAL(told, cases[c].told);
        /* told once in all, and then quiet until the heartbeat */
        s_ready(l, 10 + 2 * notify, &rd);
        n = s_appends(&rd, 1, m, 4);
        for (size_t i = 0; i < n; i++) {
            bare += s_count(m[i]) == 0;
            CU_ASSERT(m[i]->commit_index == 1);
        }
        CU_ASSERT(bare == (cases[c].more ? 0u : 1u));
        s_ready(l, 10 + 2 * notify + 1, &rd);
        CU_ASSERT_EQUAL(s_appends(&rd, 1, m, 4), 0);
        qkv_core_destroy(&l);
    }
}

static void test_refusal_probes(void) {
    qkv_core_t *l = s_leader(1, 1, 1 << 20, 1 << 20);
    for (int k = 0; k < 5; k++)
        s_propose(l, "k");
    qkv_core_ready_t rd;
    s_ready(l, 0, &rd);
    qkv_msg_t ack = s_ack(true, 5, 0, 0);
    qkv_core_step_ack(l, 0, &ack, 1);
    s_propose(l, "k");
    s_propose(l, "k");
    s_ready(l, 2, &rd); /* sends 6-7 */
    /* the follower lost 6-7 in a reconnect: it refuses a later batch of 8
       with its last index 5 */
    s_propose(l, "k");
    s_ready(l, 3, &rd); /* sends 8 */
    qkv_msg_t refusal = s_ack(false, 7, 5, 1);
    CU_ASSERT_EQUAL(qkv_core_step_ack(l, 0, &refusal, 4), 0);
    qkv_core_peer_t peer;
    qkv_core_peer(l, 0, &peer);
    CU_ASSERT(peer.probing && peer.next == 6 && peer.match == 5);
    s_ready(l, 4, &rd);
    const qkv_core_msg_t *m[4];
    CU_ASSERT_EQUAL_FATAL(s_appends(&rd, 0, m, 4), 1);
    CU_ASSERT(m[0]->prev_index == 5 && m[0]->first == 6 && m[0]->last == 8);
    /* probing: one APPEND at a time; new entries wait */
    s_propose(l, "k");
    s_ready(l, 5, &rd);
    CU_ASSERT_EQUAL(s_appends(&rd, 0, m, 4), 0);
    /* a stale refusal (of the batch sent before the probe) is ignored */
    refusal = s_ack(false, 8, 5, 1);
    qkv_core_step_ack(l, 0, &refusal, 6);
    qkv_core_peer(l, 0, &peer);
    CU_ASSERT(peer.probing && peer.next == 6);
    /* the probe's answer: back to streaming */
    ack = s_ack(true, 8, 0, 0);
    qkv_core_step_ack(l, 0, &ack, 7);
    qkv_core_peer(l, 0, &peer);
    CU_ASSERT(!peer.probing && peer.match == 8 && peer.next == 9);
    s_ready(l, 7, &rd);
    CU_ASSERT_EQUAL_FATAL(s_appends(&rd, 0, m, 4), 1);
    CU_ASSERT(m[0]->first == 9 && m[0]->last == 9 && m[0]->commit_index == 8);
    qkv_core_destroy(&l);
}

/* A probe that is never answered goes again after a resend interval. */
static void test_probe_resent(void) {
    qkv_core_t *l = s_leader(1, 1, 1 << 20, 1 << 20);
    s_propose(l, "k");
    qkv_core_ready_t rd;
    s_ready(l, 0, &rd);
    qkv_core_send_failed(l, 0, 0); /* the peer was absent */
    const qkv_core_msg_t *m[4];
    s_ready(l, RESEND - 1, &rd);
    for (size_t i = 0; i < s_appends(&rd, 0, m, 4); i++)
        CU_ASSERT(s_count(m[i]) == 0); /* heartbeats at most */
    CU_ASSERT(qkv_core_next_due(l) <= RESEND);
    s_ready(l, RESEND, &rd);
    CU_ASSERT_EQUAL_FATAL(s_appends(&rd, 0, m, 4), 1);
    CU_ASSERT(m[0]->first == 1 && m[0]->last == 1);
    qkv_core_destroy(&l);
}

/* Entries in flight with no answer for a resend interval are resent. */
static void test_stall_resends(void) {
    qkv_core_t *l = s_leader(1, 1, 1 << 20, 1 << 20);
    s_propose(l, "k");
    qkv_core_ready_t rd;
    s_ready(l, 0, &rd);
    /* heartbeats go on meanwhile and are answered with the old index 0 */
    qkv_msg_t ack = s_ack(true, 0, 0, 0);
    qkv_core_step_ack(l, 0, &ack, HB);
    s_ready(l, RESEND, &rd);
    const qkv_core_msg_t *m[4];
    size_t n = s_appends(&rd, 0, m, 4);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT(s_count(m[i]) == 0);
    s_ready(l, RESEND + 1, &rd);
    n = s_appends(&rd, 0, m, 4);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT(m[0]->prev_index == 0 && m[0]->first == 1 && m[0]->last == 1);
    qkv_core_destroy(&l);
}

/* ACKs that cannot come from this cluster's follower change nothing. */
static void test_bad_acks(void) {
    qkv_core_t *l = s_leader(2, 1, 1 << 20, 1 << 20);
    s_propose(l, "k");
    qkv_msg_t ack = s_ack(true, 1, 0, 0);
    ack.cluster_id = CLUSTER + 1;
    CU_ASSERT_EQUAL(qkv_core_step_ack(l, 0, &ack, 1), QKV_MALFORMED);
    ack = s_ack(true, 2, 0, 0); /* beyond the log */
    CU_ASSERT_EQUAL(qkv_core_step_ack(l, 0, &ack, 1), QKV_MALFORMED);
    ack = s_ack(true, 1, 0, 0);
    ack.term = 2; /* a higher term: not from this leadership's followers */
    CU_ASSERT_EQUAL(qkv_core_step_ack(l, 0, &ack, 1), QKV_MALFORMED);
    ack = s_ack(true, 1, 0, 0);
    CU_ASSERT_EQUAL(qkv_core_step_ack(l, 2, &ack, 1), QKV_MALFORMED);
    qkv_core_ready_t rd;
    s_ready(l, 1, &rd);
    CU_ASSERT_EQUAL(qkv_core_commit_index(l), 0);
    qkv_core_peer_t peer;
    qkv_core_peer(l, 0, &peer);
    CU_ASSERT(peer.match == 0 && peer.last_ack_us == 0);
    qkv_core_destroy(&l);
}

static void test_config_refused(void) {
    qkv_core_config_t cfg = {.leader = true,
                             .peer_count = 3,
                             .write_quorum = 4,
                             .cluster_id = CLUSTER,
                             .term = 1,
                             .heartbeat_us = HB,
                             .resend_us = RESEND,
                             .batch_bytes = 1,
                             .window_bytes = 1,
                             .ack_repeat_us = 1};
    CU_ASSERT(qkv_core_new(&cfg) == NULL); /* quorum above the peers */
    cfg.write_quorum = 1;
    cfg.cluster_id = 0;
    CU_ASSERT(qkv_core_new(&cfg) == NULL);
    cfg.cluster_id = CLUSTER;
    cfg.term = 0;
    CU_ASSERT(qkv_core_new(&cfg) == NULL);
    cfg.term = 1;
    cfg.peer_count = QKV_CORE_MAX_PEERS + 1;
    CU_ASSERT(qkv_core_new(&cfg) == NULL);
    /* a follower proposes nothing */
    qkv_core_t *f = s_follower();
    qkv_entry_t *e = qkv_entry_new(QKV_OP_PUT, "k", 1, "v", 1);
    CU_ASSERT(qkv_core_propose(f, &e) == 0 && e != NULL);
    free(e);
    qkv_core_destroy(&f);
    CU_ASSERT(f == NULL);
    qkv_core_destroy(&f);
}

/* Entry times never go back in the log, whatever the clock says. */
static void test_log_time(void) {
    qkv_core_t *l = s_leader(0, 0, 1 << 20, 1 << 20);
    const uint64_t times[] = {1000, 900, 1500, 1400};
    const uint64_t want[] = {1000, 1000, 1500, 1500};
    for (size_t i = 0; i < 4; i++) {
        qkv_entry_t *e = qkv_entry_new(QKV_OP_PUT, "k", 1, "v", 1);
        e->time_ms = times[i];
        uint64_t index = qkv_core_propose(l, &e);
        CU_ASSERT(qkv_log_get(qkv_core_log(l), index)->time_ms == want[i]);
        CU_ASSERT(qkv_log_get(qkv_core_log(l), index)->term == 1);
    }
    qkv_core_destroy(&l);
}

/*  ---------------------------------------------------------------------
    A simulated cluster: a leader and followers joined by FIFO links that
    lose messages; followers are wiped now and then. */

#define SIM_PEERS 4
#define SIM_QUORUM 2

typedef struct {
    qkv_core_msg_t msg; /* as sent */
    s_append_t append;  /* APPEND as received */
    int64_t at;         /* delivery time */
} s_wire_t;

typedef struct {
    s_wire_t *q;
    size_t head, count, cap;
} s_link_t;

static void s_link_push(s_link_t *l, const s_wire_t *w) {
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        s_wire_t *q = malloc(cap * sizeof(*q));
        CU_ASSERT_FATAL(q != NULL);
        for (size_t i = 0; i < l->count; i++)
            q[i] = l->q[(l->head + i) % l->cap];
        free(l->q);
        l->q = q;
        l->head = 0;
        l->cap = cap;
    }
    l->q[(l->head + l->count++) % l->cap] = *w;
}

/* Turns a leader message into what the follower decodes (entries read
   from the leader's log; fewer than 16 per APPEND with these batches). */
static void s_receive(const qkv_core_t *leader, const qkv_core_msg_t *m,
                      s_append_t *a) {
    uint64_t terms[16];
    size_t n = (size_t)s_count(m);
    CU_ASSERT_FATAL(n <= 16);
    for (size_t i = 0; i < n; i++)
        terms[i] = qkv_log_get(qkv_core_log(leader), m->first + i)->term;
    s_make_append(a, m->cluster_id, m->term, m->prev_index, m->prev_term, terms,
                  n, m->commit_index);
}

static void test_simulated_cluster(void) {
    qkv_core_t *leader = s_leader(SIM_PEERS, SIM_QUORUM, 8 * ENTRY, 64 * ENTRY);
    qkv_core_t *f[SIM_PEERS];
    s_link_t down[SIM_PEERS], up[SIM_PEERS];
    memset(down, 0, sizeof down);
    memset(up, 0, sizeof up);
    for (size_t p = 0; p < SIM_PEERS; p++)
        f[p] = s_follower();
    kit_rng_t rng;
    kit_rng_seed(&rng, 99);
    uint64_t commit_seen = 0;
    int wrong = 0;
    int64_t now = 0;
    for (int step = 0; step < 20000; step++, now += 1000) {
        bool lossy = step < 15000;
        if (step < 19000 && kit_rng_below(&rng, 3) == 0)
            s_propose(leader, "k");
        bool wipes = step < 10000;
        if (wipes && kit_rng_below(&rng, 1000) == 0) {
            size_t p = kit_rng_below(&rng, SIM_PEERS); /* restarted empty */
            qkv_core_destroy(&f[p]);
            f[p] = s_follower();
        }
        qkv_core_ready_t rd;
        s_ready(leader, now, &rd);
        /* commit never goes down, and never beyond what a quorum holds */
        uint64_t commit = qkv_core_commit_index(leader);
        size_t holders = 0;
        for (size_t p = 0; p < SIM_PEERS; p++)
            holders += qkv_core_last_index(f[p]) >= commit ||
                       qkv_core_applied_index(f[p]) >= commit;
        wrong += commit < commit_seen;
        commit_seen = commit;
        for (size_t i = 0; i < rd.msg_count; i++) {
            s_wire_t w;
            w.msg = rd.msgs[i];
            w.at = now + (int64_t)kit_rng_below(&rng, 5000);
            s_receive(leader, &w.msg, &w.append);
            if (!lossy || kit_rng_below(&rng, 20) != 0)
                s_link_push(&down[w.msg.peer], &w);
        }
        for (size_t p = 0; p < SIM_PEERS; p++) {
            /* first in, first out: deliver the due head */
            while (down[p].count && down[p].q[down[p].head].at <= now) {
                s_wire_t *w = &down[p].q[down[p].head];
                w->append.msg.entries = w->append.views; /* it moved */
                qkv_core_step_append(f[p], 0, &w->append.msg, now);
                down[p].head = (down[p].head + 1) % down[p].cap;
                down[p].count--;
            }
            qkv_core_ready_t frd;
            s_ready(f[p], now, &frd);
            /* a follower applies only what the leader committed */
            wrong += frd.apply_to > commit;
            qkv_core_applied_to(f[p], frd.apply_to);
            for (size_t i = 0; i < frd.msg_count; i++) {
                s_wire_t w;
                memset(&w, 0, sizeof(w));
                w.msg = frd.msgs[i];
                w.at = now + (int64_t)kit_rng_below(&rng, 5000);
                if (!lossy || kit_rng_below(&rng, 20) != 0)
                    s_link_push(&up[p], &w);
            }
            while (up[p].count && up[p].q[up[p].head].at <= now) {
                const qkv_core_msg_t *a = &up[p].q[up[p].head].msg;
                qkv_msg_t m =
                    s_ack(a->ok, a->index, a->hint_index, a->hint_term);
                CU_ASSERT(qkv_core_step_ack(leader, p, &m, now) == 0);
                up[p].head = (up[p].head + 1) % up[p].cap;
                up[p].count--;
            }
        }
        /* with no follower wiped since, a commit is held by the quorum */
        if (step >= 10000 + 1000)
            wrong += holders < SIM_QUORUM;
    }
    /* lossless for the last 5000 steps and quiet for the last 1000: every
       follower holds and knows committed everything */
    uint64_t last = qkv_core_last_index(leader);
    CU_ASSERT(last > 5000);
    CU_ASSERT_EQUAL(qkv_core_commit_index(leader), last);
    for (size_t p = 0; p < SIM_PEERS; p++) {
        uint64_t have = qkv_core_last_index(f[p]);
        if (have != last || qkv_core_commit_index(f[p]) != last)
            fprintf(stderr,
                    "\n  follower %zu holds %llu, commit %llu of %llu\n", p,
                    (unsigned long long)have,
                    (unsigned long long)qkv_core_commit_index(f[p]),
                    (unsigned long long)last);
        if (qkv_core_error(f[p])[0])
            fprintf(stderr, "\n  follower %zu stopped: %s\n", p,
                    qkv_core_error(f[p]));
        CU_ASSERT_EQUAL(have, last);
        CU_ASSERT_EQUAL(qkv_core_commit_index(f[p]), last);
        qkv_core_destroy(&f[p]);
        free(down[p].q);
        free(up[p].q);
    }
    CU_ASSERT_EQUAL(wrong, 0);
    qkv_core_destroy(&leader);
}

/*  ---------------------------------------------------------------------
    The Raft paper's figures 7 and 8, with logs restored as from disk */

/* A core of cluster CLUSTER in term whose log holds entries of the given
   terms (0 ends), as a restart recovers it. */
static qkv_core_t *s_restored(bool leader, const uint64_t *terms,
                              uint64_t term) {
    qkv_core_config_t cfg = {.leader = leader,
                             .peer_count = leader ? 2 : 0,
                             .write_quorum = leader ? 1 : 0,
                             .cluster_id = CLUSTER,
                             .term = term,
                             .heartbeat_us = HB,
                             .resend_us = RESEND,
                             .batch_bytes = 1 << 20,
                             .window_bytes = 16 << 20,
                             .ack_repeat_us = 10000};
    qkv_core_t *core = qkv_core_new(&cfg);
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(core != NULL && log != NULL);
    for (size_t i = 0; i < 16 && terms[i]; i++) {
        qkv_entry_t *e = qkv_entry_new(QKV_OP_PUT, "k", 1, "v", 1);
        CU_ASSERT_FATAL(e != NULL);
        e->term = terms[i];
        CU_ASSERT_FATAL(qkv_log_append(log, &e) == i + 1);
    }
    CU_ASSERT_FATAL(qkv_core_restore(core, &log) == 0);
    return core;
}

/* One round trip between the leader and its follower (peer 0); peer 1
   never answers. Returns the messages the follower received. */
static size_t s_round_trip(qkv_core_t *leader, qkv_core_t *f, int64_t now) {
    qkv_core_ready_t rd;
    s_ready(leader, now, &rd);
    size_t got = 0;
    for (size_t i = 0; i < rd.msg_count; i++) {
        const qkv_core_msg_t *m = &rd.msgs[i];
        if (m->type != QKV_MSG_APPEND || m->peer != 0)
            continue;
        s_append_t a;
        s_receive(leader, m, &a);
        qkv_core_step_append(f, 0, &a.msg, now);
        got++;
    }
    qkv_core_ready_t frd;
    s_ready(f, now, &frd);
    for (size_t i = 0; i < frd.msg_count; i++) {
        qkv_msg_t ack = s_ack(frd.msgs[i].ok, frd.msgs[i].index,
                              frd.msgs[i].hint_index, frd.msgs[i].hint_term);
        ack.term = frd.msgs[i].term;
        CU_ASSERT_EQUAL(qkv_core_step_ack(leader, 0, &ack, now), 0);
    }
    return got;
}

/* Figure 7: a leader of term 8 brings each possible follower log to its
   own, dropping what conflicts, in a few round trips (refusal hints skip a
   whole term at a time). */
static void test_figure7(void) {
    static const uint64_t leader_log[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 0};
    // clang-format off
    static const struct {
        const char *name;
        uint64_t log[16];
        uint64_t term;
        int max_trips;
    } cases[] = {
        {"a: missing one", {1, 1, 1, 4, 4, 5, 5, 6, 6, 0}, 6, 3},
        {"b: missing many", {1, 1, 1, 4, 0}, 4, 5},
        {"c: one extra of term 6", {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6, 0}, 6, 3},
        {"d: extra of term 7", {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7, 0}, 7, 4},
        {"e: term 4 where 5 is", {1, 1, 1, 4, 4, 4, 4, 0}, 4, 5},
        {"f: terms 2 and 3", {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 0}, 3, 5},
    };
    // clang-format on
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qkv_core_t *leader = s_restored(true, leader_log, 8);
        qkv_core_t *f = s_restored(false, cases[c].log, cases[c].term);
        uint64_t noop = s_propose(leader, "term 8"); /* its term begins */
        CU_ASSERT_EQUAL(noop, 11);
        int64_t now = 1000000;
        int trips = 0;
        char want[128], got[128];
        for (; trips < 20; trips++, now += RESEND + 1) {
            s_round_trip(leader, f, now);
            s_log_terms(leader, want, sizeof want);
            s_log_terms(f, got, sizeof got);
            if (strcmp(want, got) == 0 && qkv_core_commit_index(leader) == 11)
                break;
        }
        bool good = strcmp(want, got) == 0 && trips < cases[c].max_trips &&
                    qkv_core_commit_index(leader) == 11 &&
                    qkv_core_error(f)[0] == '\0';
        if (!good)
            fprintf(stderr,
                    "\n  figure 7 %s: after %d round trips follower \"%s\", "
                    "leader \"%s\", commit %llu\n",
                    cases[c].name, trips + 1, got, want,
                    (unsigned long long)qkv_core_commit_index(leader));
        CU_ASSERT(good);
        qkv_core_destroy(&leader);
        qkv_core_destroy(&f);
    }
}

/* Figure 8: a leader of term 4 holding an entry of term 2 that a quorum
   now holds must not commit it by counting copies; it commits with the
   first entry of its own term. */
static void test_figure8(void) {
    static const uint64_t leader_log[] = {1, 2, 0};
    static const uint64_t follower_log[] = {1, 0};
    qkv_core_t *leader = s_restored(true, leader_log, 4);
    qkv_core_t *f = s_restored(false, follower_log, 3);
    int64_t now = 1000000;
    for (int i = 0; i < 4; i++, now += RESEND + 1)
        s_round_trip(leader, f, now);
    qkv_core_peer_t p;
    qkv_core_peer(leader, 0, &p);
    CU_ASSERT_EQUAL(p.match, 2);                       /* a quorum holds 2 */
    CU_ASSERT_EQUAL(qkv_core_commit_index(leader), 0); /* not committed */
    CU_ASSERT(!qkv_core_serving(leader));
    s_propose(leader, "term 4");
    for (int i = 0; i < 2; i++, now += RESEND + 1)
        s_round_trip(leader, f, now);
    CU_ASSERT_EQUAL(qkv_core_commit_index(leader), 3); /* 2 commits with 3 */
    CU_ASSERT(qkv_core_serving(leader));
    qkv_core_destroy(&leader);
    qkv_core_destroy(&f);
}

/* A leader of peers followers (quorum 1) whose entries 1..10 peer 0
   acknowledged, committed and applied at now. */
static qkv_core_t *s_ten_applied(size_t peers, int64_t now) {
    qkv_core_t *leader = s_leader(peers, 1, 1 << 20, 16 << 20);
    qkv_core_ready_t rd;
    for (int i = 0; i < 10; i++)
        s_propose(leader, "k");
    s_ready(leader, now, &rd);
    qkv_msg_t ok = s_ack(true, 10, 0, 0);
    CU_ASSERT_EQUAL(qkv_core_step_ack(leader, 0, &ok, now), 0);
    s_ready(leader, now, &rd);
    CU_ASSERT_EQUAL(qkv_core_commit_index(leader), 10);
    qkv_core_applied_to(leader, 10);
    return leader;
}

/* A follower behind a compacted log: the leader asks for a snapshot (and
   again only after its patience), sends no APPEND meanwhile, and goes on
   from after the snapshot once the follower acknowledges it. */
static void test_snapshot_for_lagging_peer(void) {
    int64_t now = 1000000;
    qkv_core_t *leader = s_ten_applied(1, now);
    qkv_core_ready_t rd;
    qkv_core_compact(leader, 8);
    CU_ASSERT_EQUAL(qkv_log_first_index(qkv_core_log(leader)), 9);
    /* the peer lost everything: its refusal reaches back before 9 */
    qkv_msg_t lost = s_ack(false, 10, 0, 0);
    CU_ASSERT_EQUAL(qkv_core_step_ack(leader, 0, &lost, now), 0);
    s_ready(leader, now, &rd);
    CU_ASSERT_EQUAL(rd.msg_count, 1);
    CU_ASSERT_EQUAL(rd.msgs[0].type, QKV_MSG_SNAPSHOT);
    s_ready(leader, now + HB * 5, &rd);
    CU_ASSERT_EQUAL(rd.msg_count, 0); /* nothing while it is on its way */
    CU_ASSERT(qkv_core_next_due(leader) > now + HB * 5);
    /* installed at 10: replication goes on from 11 */
    s_propose(leader, "k");
    qkv_msg_t in = s_ack(true, 10, 0, 0);
    CU_ASSERT_EQUAL(qkv_core_step_ack(leader, 0, &in, now + HB * 6), 0);
    s_ready(leader, now + HB * 6, &rd);
    const qkv_core_msg_t *a[4];
    CU_ASSERT_EQUAL_FATAL(s_appends(&rd, 0, a, 4), 1);
    CU_ASSERT_EQUAL(a[0]->first, 11);
    CU_ASSERT_EQUAL(a[0]->prev_index, 10);
    qkv_core_destroy(&leader);
}

/* A peer that never answered (a restarted leader knows no match) is
   probed from the log's first entry, which moves with every snapshot: its
   refusal reaching back before the log asks for a snapshot even when it
   answers an older probe. */
static void test_snapshot_for_silent_peer(void) {
    int64_t now = 1000000;
    qkv_core_t *leader = s_ten_applied(2, now);
    qkv_core_ready_t rd;
    qkv_core_compact(leader, 4);
    qkv_core_send_failed(leader, 1, now); /* probes peer 1 from 5 */
    s_ready(leader, now + RESEND, &rd);
    qkv_core_compact(leader, 8); /* the log moved on meanwhile */
    qkv_core_send_failed(leader, 1, now + RESEND); /* probes from 9 now */
    qkv_msg_t lost = s_ack(false, 4, 0, 0); /* answers the probe from 5 */
    CU_ASSERT_EQUAL(qkv_core_step_ack(leader, 1, &lost, now + RESEND), 0);
    s_ready(leader, now + RESEND, &rd);
    bool snapshot = false;
    for (size_t i = 0; i < rd.msg_count; i++)
        snapshot = snapshot || (rd.msgs[i].type == QKV_MSG_SNAPSHOT &&
                                rd.msgs[i].peer == 1);
    CU_ASSERT(snapshot);
    qkv_core_destroy(&leader);
}

/* A follower installs a snapshot: its log goes on after it, and the ACK
   of its index is owed. */
static void test_follower_install(void) {
    qkv_core_t *f = s_follower();
    qkv_core_ready_t rd;
    qkv_core_install(f, CLUSTER, 4, 50, 3);
    const qkv_core_msg_t *ack = s_follower_ack(f, 1000000, &rd);
    CU_ASSERT_FATAL(ack != NULL);
    CU_ASSERT(ack->ok && ack->index == 50);
    CU_ASSERT_EQUAL(ack->term, 4); /* the leader's: not a stale answer */
    CU_ASSERT_EQUAL(qkv_core_commit_index(f), 50);
    CU_ASSERT_EQUAL(qkv_log_first_index(qkv_core_log(f)), 51);
    CU_ASSERT_EQUAL(qkv_log_term_at(qkv_core_log(f), 50), 3);
    const uint64_t two[] = {3, 3};
    s_append_t a;
    s_make_append(&a, CLUSTER, 4, 50, 3, two, 2, 52);
    CU_ASSERT_EQUAL(qkv_core_step_append(f, 0, &a.msg, 1100000), 0);
    ack = s_follower_ack(f, 1100000, &rd);
    CU_ASSERT_FATAL(ack != NULL);
    CU_ASSERT(ack->ok && ack->index == 52);
    CU_ASSERT_EQUAL(rd.apply_to, 52);
    qkv_core_destroy(&f);
}

static int s_add_suites(void) {
    static const kit_test_t follower[] = {
        KIT_TEST(test_follower_log_matching),
        KIT_TEST(test_follower_applied_prefix), KIT_TEST(test_follower_acks),
        KIT_TEST(test_follower_fail), KIT_TESTS_END};
    static const kit_test_t leader[] = {
        KIT_TEST(test_commit_rule),
        KIT_TEST(test_commit_never_decreases),
        KIT_TEST(test_batches_and_window),
        KIT_TEST(test_commit_news_and_heartbeats),
        KIT_TEST(test_commit_news_delayed),
        KIT_TEST(test_refusal_probes),
        KIT_TEST(test_probe_resent),
        KIT_TEST(test_stall_resends),
        KIT_TEST(test_bad_acks),
        KIT_TEST(test_config_refused),
        KIT_TEST(test_log_time),
        KIT_TEST(test_simulated_cluster),
        KIT_TEST(test_figure7),
        KIT_TEST(test_figure8),
        KIT_TEST(test_snapshot_for_lagging_peer),
        KIT_TEST(test_snapshot_for_silent_peer),
        KIT_TEST(test_follower_install),
        KIT_TESTS_END};
    if (!kit_add_suite("core_follower", NULL, NULL, follower))
        return -1;
    return kit_add_suite("core_leader", NULL, NULL, leader) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
