/*  test_sessions.c - client sessions (node/include/qkv_sessions.h) and the
    state machine that applies entries through them (qkv_state.h).

    Verdicts (new, retry with the original result, conflict, expired) as a
    table of writes and checks; forgetting in log order: records oldest
    first (raising the floor), idle sessions by log time, the session idle
    longest when the table is full; the same outcomes on two state
    machines fed the same log; RESET keeps sessions.
*/
#include "kit.h"
#include "qkv_entry.h"
#include "qkv_sessions.h"
#include "qkv_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000ULL

/*  ---------------------------------------------------------------------
    Verdicts, table-driven */

typedef struct {
    char what;        /* 'r' record, 'c' check, 't' tick */
    uint64_t id, seq; /* pair */
    uint64_t hash;
    uint64_t time_ms;
    int verdict;    /* 'c': expected qkv_session_verdict_t */
    uint64_t index; /* 'r': index recorded; 'c' retry: the original's */
} s_step_t;

typedef struct {
    const char *name;
    size_t window;
    s_step_t steps[16];
} s_case_t;

// clang-format off
#define R(id, seq, hash, t, index) {'r', id, seq, hash, t, 0, index}
#define C(id, seq, hash, verdict, index) {'c', id, seq, hash, 0, verdict, index}
#define T(t) {'t', 0, 0, 0, t, 0, 0}
#define END {0, 0, 0, 0, 0, 0, 0}

static const s_case_t s_cases[] = {
    {"a new client starts at seq 1", 8,
     {C(1, 1, 10, QKV_SESSION_NEW, 0), C(1, 2, 10, QKV_SESSION_EXPIRED, 0),
      END}},
    {"a retry gets the original", 8,
     {R(1, 1, 10, 0, 5), C(1, 1, 10, QKV_SESSION_RETRY, 5), END}},
    {"the same pair with other content", 8,
     {R(1, 1, 10, 0, 5), C(1, 1, 11, QKV_SESSION_CONFLICT, 0), END}},
    {"gaps and any order within a session", 8,
     {R(1, 1, 10, 0, 1), R(1, 5, 10, 0, 2), C(1, 3, 10, QKV_SESSION_NEW, 0),
      C(1, 9, 10, QKV_SESSION_NEW, 0), C(1, 5, 10, QKV_SESSION_RETRY, 2),
      END}},
    {"clients do not share seqs", 8,
     {R(1, 1, 10, 0, 1), C(2, 1, 10, QKV_SESSION_NEW, 0),
      C(2, 2, 10, QKV_SESSION_EXPIRED, 0), END}},
    {"the oldest record goes first and raises its floor", 2,
     {R(1, 1, 10, 0, 1), R(1, 2, 10, 0, 2), R(1, 3, 10, 0, 3),
      C(1, 1, 10, QKV_SESSION_EXPIRED, 0), C(1, 2, 10, QKV_SESSION_RETRY, 2),
      C(1, 3, 10, QKV_SESSION_RETRY, 3), C(1, 4, 10, QKV_SESSION_NEW, 0),
      END}},
    {"another client's records push a client's out", 2,
     {R(1, 1, 10, 0, 1), R(2, 1, 10, 0, 2), R(2, 2, 10, 0, 3),
      C(1, 1, 10, QKV_SESSION_EXPIRED, 0), C(1, 2, 10, QKV_SESSION_NEW, 0),
      END}},
    {"an idle session is dropped with its records", 8,
     {R(1, 1, 10, 0, 1), R(2, 1, 10, HOUR_MS / 2, 2), T(HOUR_MS + 1),
      C(1, 1, 10, QKV_SESSION_NEW, 0), C(1, 2, 10, QKV_SESSION_EXPIRED, 0),
      C(2, 1, 10, QKV_SESSION_RETRY, 2), END}},
    {"a write keeps a session alive", 8,
     {R(1, 1, 10, 0, 1), R(1, 2, 10, HOUR_MS - 1, 2), T(HOUR_MS + 5),
      C(1, 1, 10, QKV_SESSION_RETRY, 1), END}},
    {"a full table drops the session idle longest", 2,
     {R(1, 1, 10, 1, 1), R(2, 1, 10, 2, 2), R(3, 1, 10, 3, 3),
      C(1, 1, 10, QKV_SESSION_NEW, 0), C(1, 2, 10, QKV_SESSION_EXPIRED, 0),
      C(3, 1, 10, QKV_SESSION_RETRY, 3), END}},
};
// clang-format on

static void s_run(const s_case_t *c) {
    qkv_sessions_t *s = qkv_sessions_new(c->window, HOUR_MS);
    CU_ASSERT_FATAL(s != NULL);
    for (size_t i = 0; c->steps[i].what; i++) {
        const s_step_t *st = &c->steps[i];
        if (st->what == 'r') {
            CU_ASSERT_EQUAL(qkv_sessions_record(s, st->id, st->seq, st->hash,
                                                st->index, st->index * 10,
                                                st->time_ms),
                            0);
            qkv_sessions_tick(s, st->time_ms);
        } else if (st->what == 't') {
            qkv_sessions_tick(s, st->time_ms);
        } else {
            const qkv_session_rec_t *rec = NULL;
            int v = qkv_sessions_check(s, st->id, st->seq, st->hash, &rec);
            bool good = v == st->verdict;
            if (good && v == QKV_SESSION_RETRY)
                good = rec && rec->index == st->index &&
                       rec->result == st->index * 10 && rec->hash == st->hash;
            if (!good)
                fprintf(stderr, "\n  %s, step %zu: verdict %d, expected %d\n",
                        c->name, i, v, st->verdict);
            CU_ASSERT(good);
        }
    }
    qkv_sessions_destroy(&s);
    CU_ASSERT(s == NULL);
    qkv_sessions_destroy(&s);
}

static void test_verdicts(void) {
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++)
        s_run(&s_cases[i]);
}

static void test_bounds(void) {
    CU_ASSERT(qkv_sessions_new(0, HOUR_MS) == NULL);
    CU_ASSERT(qkv_sessions_new((1u << 30) + 1, HOUR_MS) == NULL);
    CU_ASSERT(qkv_sessions_new(8, 0) == NULL);
    /* many clients through a small table: counts stay bounded */
    qkv_sessions_t *s = qkv_sessions_new(100, HOUR_MS);
    CU_ASSERT_FATAL(s != NULL);
    for (uint64_t i = 1; i <= 10000; i++) {
        uint64_t id = 1 + i % 357;
        CU_ASSERT_EQUAL(qkv_sessions_record(s, id, i, i, i, i, i), 0);
    }
    CU_ASSERT(qkv_sessions_records(s) <= 100);
    CU_ASSERT(qkv_sessions_count(s) <= 100);
    /* the last 100 are all remembered */
    size_t found = 0;
    for (uint64_t i = 9901; i <= 10000; i++)
        found +=
            qkv_sessions_check(s, 1 + i % 357, i, i, NULL) == QKV_SESSION_RETRY;
    CU_ASSERT_EQUAL(found, 100);
    qkv_sessions_clear(s);
    CU_ASSERT_EQUAL(qkv_sessions_count(s), 0);
    CU_ASSERT_EQUAL(qkv_sessions_records(s), 0);
    CU_ASSERT_EQUAL(qkv_sessions_check(s, 1, 1, 1, NULL), QKV_SESSION_NEW);
    qkv_sessions_destroy(&s);
}

/*  ---------------------------------------------------------------------
    Against a reference: the same rules, written plainly (arrays, linear
    scans), on random writes from a few clients: mostly in order, with
    gaps, out of order, retries, long idle times and many clients. */

#define REF_MAX 4096

typedef struct {
    uint64_t id, seq, hash, index;
    bool alive; /* not forgotten, its session not dropped */
    uint64_t epoch;
} ref_rec_t;

typedef struct {
    uint64_t id, last_ms, floor, epoch;
    bool alive;
} ref_sess_t;

typedef struct {
    size_t window;
    uint64_t ttl;
    ref_rec_t recs[REF_MAX]; /* in the order made; head..count */
    size_t head, count;
    ref_sess_t sess[REF_MAX];
    size_t nsess;
    uint64_t epochs;
} ref_t;

static ref_sess_t *ref_session(ref_t *r, uint64_t id) {
    for (size_t i = 0; i < r->nsess; i++)
        if (r->sess[i].alive && r->sess[i].id == id)
            return &r->sess[i];
    return NULL;
}

static size_t ref_live_sessions(const ref_t *r) {
    size_t n = 0;
    for (size_t i = 0; i < r->nsess; i++)
        n += r->sess[i].alive;
    return n;
}

static int ref_check(ref_t *r, uint64_t id, uint64_t seq, uint64_t hash,
                     uint64_t *index) {
    ref_sess_t *s = ref_session(r, id);
    if (!s)
        return seq > 1 ? QKV_SESSION_EXPIRED : QKV_SESSION_NEW;
    for (size_t i = r->head; i < r->count; i++) {
        ref_rec_t *x = &r->recs[i];
        if (x->alive && x->id == id && x->seq == seq && x->epoch == s->epoch) {
            *index = x->index;
            return x->hash == hash ? QKV_SESSION_RETRY : QKV_SESSION_CONFLICT;
        }
    }
    return seq <= s->floor ? QKV_SESSION_EXPIRED : QKV_SESSION_NEW;
}

static void ref_drop(ref_t *r, ref_sess_t *s) {
    s->alive = false;
    for (size_t i = r->head; i < r->count; i++)
        if (r->recs[i].id == s->id && r->recs[i].epoch == s->epoch)
            r->recs[i].alive = false;
}

static void ref_tick(ref_t *r, uint64_t t) {
    /* in order of last write, oldest first: drop those idle too long */
    for (;;) {
        ref_sess_t *oldest = NULL;
        for (size_t i = 0; i < r->nsess; i++)
            if (r->sess[i].alive &&
                (!oldest || r->sess[i].last_ms < oldest->last_ms))
                oldest = &r->sess[i];
        if (!oldest || t <= r->ttl || oldest->last_ms >= t - r->ttl)
            return;
        ref_drop(r, oldest);
    }
}

static void ref_record(ref_t *r, uint64_t id, uint64_t seq, uint64_t hash,
                       uint64_t index, uint64_t t) {
    if (r->count - r->head == r->window) {
        ref_rec_t *old = &r->recs[r->head++];
        ref_sess_t *s = ref_session(r, old->id);
        if (old->alive && s && s->epoch == old->epoch && old->seq > s->floor)
            s->floor = old->seq;
    }
    ref_sess_t *s = ref_session(r, id);
    if (!s) {
        if (ref_live_sessions(r) == r->window) {
            ref_sess_t *oldest = NULL; /* idle the longest */
            for (size_t i = 0; i < r->nsess; i++)
                if (r->sess[i].alive &&
                    (!oldest || r->sess[i].last_ms < oldest->last_ms))
                    oldest = &r->sess[i];
            ref_drop(r, oldest);
        }
        CU_ASSERT_FATAL(r->nsess < REF_MAX);
        s = &r->sess[r->nsess++];
        *s = (ref_sess_t){id, t, 0, ++r->epochs, true};
    }
    if (t > s->last_ms)
        s->last_ms = t;
    CU_ASSERT_FATAL(r->count < REF_MAX);
    r->recs[r->count++] = (ref_rec_t){id, seq, hash, index, true, s->epoch};
}

static void test_against_reference(void) {
    static ref_t ref;
    kit_rng_t rng;
    kit_rng_seed(&rng, 2026);
    int wrong = 0, seen[4] = {0}, loads = 0;

    for (int round = 0; round < 6; round++) {
        memset(&ref, 0, sizeof ref);
        ref.window = 1 + kit_rng_below(&rng, 100);
        ref.ttl = 1000;
        qkv_sessions_t *s = qkv_sessions_new(ref.window, ref.ttl);
        CU_ASSERT_FATAL(s != NULL);
        uint64_t next_seq[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        uint64_t t = 1, index = 0;
        for (int step = 0; step < 600 && ref.count < REF_MAX - 1; step++) {
            uint64_t id = 1 + kit_rng_below(&rng, round < 3 ? 3 : 8);
            uint64_t seq;
            switch (kit_rng_below(&rng, 10)) {
            case 0: /* a gap */
                seq = next_seq[id - 1] + 1 + kit_rng_below(&rng, 5);
                break;
            case 1: /* any older one */
                seq = 1 + kit_rng_below(&rng, next_seq[id - 1]);
                break;
            case 2:
            case 3: /* a recent one again: a retry or a conflict */
                seq = next_seq[id - 1] - 1 - kit_rng_below(&rng, 3);
                seq = seq >= 1 && seq < next_seq[id - 1] ? seq : 1;
                break;
            default: /* the next */
                seq = next_seq[id - 1];
            }
            if (seq >= next_seq[id - 1])
                next_seq[id - 1] = seq + 1;
            uint64_t hash = seq * 31 + id + kit_rng_below(&rng, 4) / 3;
            t += kit_rng_below(&rng, 50) == 0 ? 600 : 3;
            uint64_t want_index = 0;
            int want = ref_check(&ref, id, seq, hash, &want_index);
            const qkv_session_rec_t *rec = NULL;
            int got = qkv_sessions_check(s, id, seq, hash, &rec);
            seen[got]++;
            bool good = got == want;
            if (good && got == QKV_SESSION_RETRY)
                good = rec && rec->index == want_index;
            if (!good && wrong++ < 3)
                fprintf(stderr,
                        "\n  round %d step %d: client %llu seq %llu: "
                        "verdict %d, reference %d\n",
                        round, step, (unsigned long long)id,
                        (unsigned long long)seq, got, want);
            if (want == QKV_SESSION_NEW) {
                index++;
                CU_ASSERT_EQUAL(
                    qkv_sessions_record(s, id, seq, hash, index, index * 10, t),
                    0);
                ref_record(&ref, id, seq, hash, index, t);
            }
            qkv_sessions_tick(s, t);
            ref_tick(&ref, t);
            if (step % 97 == 96) {
                /* a snapshot: the table saved and loaded into a new one
                   must judge everything after exactly as the reference */
                qkv_buf_t saved = {0};
                CU_ASSERT_FATAL(qkv_sessions_save(s, &saved) == 0);
                qkv_sessions_t *loaded = qkv_sessions_new(ref.window, ref.ttl);
                size_t used = 0;
                CU_ASSERT_FATAL(loaded != NULL);
                CU_ASSERT_FATAL(qkv_sessions_load(loaded, saved.data,
                                                  saved.size, &used) == 0);
                CU_ASSERT_EQUAL(used, saved.size);
                qkv_buf_t again = {0};
                CU_ASSERT(qkv_sessions_save(loaded, &again) == 0);
                CU_ASSERT(again.size == saved.size &&
                          memcmp(again.data, saved.data, saved.size) == 0);
                /* a cut state is refused */
                CU_ASSERT(qkv_sessions_load(loaded, saved.data, saved.size - 1,
                                            &used) != 0 ||
                          saved.size < 9);
                qkv_sessions_load(loaded, saved.data, saved.size, &used);
                qkv_buf_free(&saved);
                qkv_buf_free(&again);
                qkv_sessions_destroy(&s);
                s = loaded;
                loads++;
            }
            wrong += qkv_sessions_count(s) != ref_live_sessions(&ref);
            wrong += qkv_sessions_records(s) != ref.count - ref.head;
        }
        qkv_sessions_destroy(&s);
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT(loads >= 6);
    /* every verdict came up, many times */
    for (int v = 0; v < 4; v++)
        CU_ASSERT(seen[v] > 20);
}

/*  ---------------------------------------------------------------------
    The state machine */

typedef struct {
    qkv_op_t op;
    const char *key, *value;
    uint64_t id, seq, time_ms;
} s_write_t;

/* Logs the writes (indexes from 1) into log. */
static void s_fill(qkv_log_t *log, const s_write_t *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        qkv_entry_t *e = qkv_entry_new(w[i].op, w[i].key, strlen(w[i].key),
                                       w[i].value, strlen(w[i].value));
        CU_ASSERT_FATAL(e != NULL);
        e->term = 1;
        e->client_id = w[i].id;
        e->client_seq = w[i].seq;
        e->time_ms = w[i].time_ms;
        CU_ASSERT_FATAL(qkv_log_append(log, &e) == i + 1);
    }
}

static void test_apply_outcomes(void) {
    const s_write_t writes[] = {
        {QKV_OP_PUT, "a", "1", 0, 0, 10},   /* 1 untagged */
        {QKV_OP_PUT, "a", "2", 7, 1, 11},   /* 2 new: seq 2 */
        {QKV_OP_PUT, "a", "2", 7, 1, 12},   /* 3 retry of 2 */
        {QKV_OP_PUT, "a", "X", 7, 1, 13},   /* 4 conflict */
        {QKV_OP_PUT, "b", "1", 8, 5, 14},   /* 5 unknown client, seq 5 */
        {QKV_OP_DELETE, "a", "", 7, 2, 15}, /* 6 new: deleted */
        {QKV_OP_RESET, "", "", 7, 3, 16},   /* 7 new: keys go */
        {QKV_OP_DELETE, "a", "", 7, 2, 17}, /* 8 retry of 6 */
    };
    const struct {
        int kind;
        uint64_t answer_index, result;
    } want[] = {{QKV_APPLIED, 1, 1},         {QKV_APPLIED, 2, 2},
                {QKV_APPLIED_RETRY, 2, 2},   {QKV_APPLIED_CONFLICT, 4, 0},
                {QKV_APPLIED_EXPIRED, 5, 0}, {QKV_APPLIED, 6, 1},
                {QKV_APPLIED, 7, 0},         {QKV_APPLIED_RETRY, 6, 1}};
    size_t n = sizeof writes / sizeof writes[0];
    qkv_log_t *log = qkv_log_new();
    qkv_store_t *stores[2] = {qkv_store_new(), qkv_store_new()};
    CU_ASSERT_FATAL(log && stores[0] && stores[1]);
    s_fill(log, writes, n);
    for (int node = 0; node < 2; node++) {
        qkv_state_t *st = qkv_state_new(stores[node], 100, HOUR_MS);
        CU_ASSERT_FATAL(st != NULL);
        qkv_outcome_t out[8];
        /* the second node applies in pieces: the same outcomes */
        size_t done = 0;
        while (done < n) {
            size_t max = node ? 3 : 8;
            size_t got = qkv_state_apply(st, log, n, out + done, max);
            CU_ASSERT_FATAL(got > 0);
            done += got;
        }
        for (size_t i = 0; i < n; i++) {
            bool good = out[i].index == i + 1 && out[i].kind == want[i].kind &&
                        out[i].op == writes[i].op;
            if (good && (want[i].kind == QKV_APPLIED ||
                         want[i].kind == QKV_APPLIED_RETRY))
                good = out[i].answer_index == want[i].answer_index &&
                       out[i].result == want[i].result;
            if (!good)
                fprintf(stderr,
                        "\n  node %d entry %zu: kind %d index %llu result "
                        "%llu\n",
                        node, i + 1, out[i].kind,
                        (unsigned long long)out[i].answer_index,
                        (unsigned long long)out[i].result);
            CU_ASSERT(good);
        }
        CU_ASSERT_EQUAL(qkv_state_applied_index(st), n);
        CU_ASSERT_EQUAL(qkv_store_count(stores[node]), 0); /* reset */
        /* RESET kept the sessions: seq 1 of client 7 is still known */
        CU_ASSERT_EQUAL(qkv_sessions_check(
                            qkv_state_sessions(st), 7, 1,
                            qkv_write_hash(QKV_OP_PUT, "a", 1, "2", 1), NULL),
                        QKV_SESSION_RETRY);
        CU_ASSERT_EQUAL(qkv_sessions_count(qkv_state_sessions(st)), 1);
        qkv_state_clear(st);
        CU_ASSERT_EQUAL(qkv_state_applied_index(st), 0);
        CU_ASSERT_EQUAL(qkv_sessions_count(qkv_state_sessions(st)), 0);
        qkv_state_destroy(&st);
        qkv_store_destroy(&stores[node]);
    }
    qkv_log_destroy(&log);
}

static void test_write_hash(void) {
    uint64_t a = qkv_write_hash(QKV_OP_PUT, "ab", 2, "c", 1);
    CU_ASSERT(a != qkv_write_hash(QKV_OP_PUT, "a", 1, "bc", 2));
    CU_ASSERT(a != qkv_write_hash(QKV_OP_DELETE, "ab", 2, "c", 1));
    CU_ASSERT(a != qkv_write_hash(QKV_OP_PUT, "ab", 2, "d", 1));
    CU_ASSERT(a == qkv_write_hash(QKV_OP_PUT, "ab", 2, "c", 1));
    qkv_entry_t *e = qkv_entry_new(QKV_OP_PUT, "ab", 2, "c", 1);
    CU_ASSERT_FATAL(e != NULL);
    e->client_id = 5; /* the hash is the content's, not the pair's */
    CU_ASSERT(qkv_entry_hash(e) == a);
    free(e);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_verdicts),          KIT_TEST(test_bounds),
        KIT_TEST(test_against_reference), KIT_TEST(test_apply_outcomes),
        KIT_TEST(test_write_hash),        KIT_TESTS_END};
    return kit_add_suite("sessions", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
