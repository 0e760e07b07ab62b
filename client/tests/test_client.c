/*  test_client.c - libqkv against a real cluster of six nodes.

    Starts a leader and five followers (WRITE_QUORUM=2) with their client
    ports, and drives them through libqkv only: blocking calls, redirects
    from followers, read-your-writes on followers, 10 000 pipelined writes
    on one connection compared on every node afterwards, idempotent
    retries, conflicts and expired sessions, timeouts and fallbacks. Fake
    nodes (ckit_fake_t) say what a real one rarely does: conflict and
    session_expired on demand, health limits, a node that goes silent in
    the middle of a dump. Keys carry a random per-run tag. The reset test,
    which empties the cluster, runs last.

    Needs the node of the same issue (merged): test_conflict_and_expired
    (conflict, session_expired from a real leader) and test_health's
    limits (max_key_bytes etc.).
*/
#include "ckit.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define NODES 6
#define PIPELINED 10000
#define LEADER_MAX_KEY 3000 /* --max-key-bytes of the leader */

static kit_cluster_t s_cluster;
static char s_tag[9];
static char s_ep[NODES][64]; /* client endpoints, leader first */

static void key_of(char *key, size_t size, const char *name) {
    snprintf(key, size, "t%s-%s", s_tag, name);
}

static qkv_client_t *client_to(size_t node, int timeout_ms) {
    qkv_client_options_t options = {.timeout_ms = timeout_ms};
    return ckit_client(s_ep[node], &options);
}

/* Puts key = value through client and expects success. */
static void put_ok(qkv_client_t *client, const char *key, const char *value,
                   qkv_result_t *result) {
    int rc = qkv_put(client, key, strlen(key), value, strlen(value), result);
    if (rc != 0)
        fprintf(stderr, "\n  put %s: %s: %s\n", key, qkv_strerror(rc),
                qkv_client_errmsg(client));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/* Gets key through client (min_index) and expects value and seq. */
static void get_expect(qkv_client_t *client, const char *key,
                       uint64_t min_index, const char *value, uint64_t seq,
                       uint64_t index) {
    qkv_result_t r;
    int rc = qkv_get(client, key, strlen(key), min_index, &r);
    if (rc != 0)
        fprintf(stderr, "\n  get %s at %s: %s: %s\n", key,
                qkv_client_endpoint(client), qkv_strerror(rc),
                qkv_client_errmsg(client));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_FATAL(r.value != NULL);
    KIT_ASSERT_STR(r.value, value);
    CU_ASSERT_EQUAL(r.value_len, strlen(value));
    CU_ASSERT_EQUAL(r.seq, seq);
    if (index)
        CU_ASSERT_EQUAL(r.index, index);
    free(r.value);
}

/*  ---------------------------------------------------------------------
    Suite setup */

static int s_init(void) {
    kit_random_tag(s_tag);
    static const char *const leader_args[] = {"--max-key-bytes=3000", NULL};
    if (ckit_cluster_start(&s_cluster, NODES - 1, 2, leader_args) != 0)
        return -1;
    for (size_t i = 0; i < NODES; i++)
        ckit_endpoint(&s_cluster.nodes[i], s_ep[i], sizeof s_ep[i]);
    return 0;
}

static int s_cleanup(void) {
    return kit_cluster_stop(&s_cluster) == 0 ? 0 : -1;
}

/*  ---------------------------------------------------------------------
    Blocking calls */

static void test_put_get(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    char key[64];
    key_of(key, sizeof key, "pg");
    qkv_result_t r1, r2;
    put_ok(c, key, "v1", &r1);
    CU_ASSERT(r1.index > 0);
    CU_ASSERT_EQUAL(r1.seq, 1);
    CU_ASSERT(r1.value == NULL);
    get_expect(c, key, 0, "v1", 1, r1.index);
    put_ok(c, key, "v2", &r2);
    CU_ASSERT_EQUAL(r2.seq, 2);
    CU_ASSERT(r2.index > r1.index);
    get_expect(c, key, 0, "v2", 2, r2.index);

    /* A missing key */
    char missing[64];
    key_of(missing, sizeof missing, "never-written");
    qkv_result_t r;
    CU_ASSERT_EQUAL(qkv_get(c, missing, strlen(missing), 0, &r), QKV_ENOTFOUND);
    CU_ASSERT(r.value == NULL);

    /* Bytes, not strings: NULs inside key and value */
    char bkey[32] = "bin\0key", bval[8] = {'a', 0, 'b', 0, 'c'};
    size_t bkey_len = 7 + strlen(s_tag);
    memcpy(bkey + 7, s_tag, strlen(s_tag));
    CU_ASSERT_EQUAL(qkv_put(c, bkey, bkey_len, bval, 5, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(qkv_get(c, bkey, bkey_len, 0, &r), 0);
    CU_ASSERT_EQUAL(r.value_len, 5);
    CU_ASSERT(memcmp(r.value, bval, 5) == 0);
    CU_ASSERT_EQUAL(r.value[5], '\0');
    free(r.value);
    qkv_client_destroy(&c);
    CU_ASSERT(c == NULL);
    qkv_client_destroy(&c); /* twice is fine */
}

static void test_delete_restarts_seq(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    char key[64];
    key_of(key, sizeof key, "del");
    qkv_result_t r, d;
    put_ok(c, key, "a", &r);
    put_ok(c, key, "b", &r);
    CU_ASSERT_EQUAL(r.seq, 2);
    CU_ASSERT_EQUAL_FATAL(qkv_delete(c, key, strlen(key), &d), 0);
    CU_ASSERT(d.deleted);
    CU_ASSERT(d.index > r.index);
    CU_ASSERT_EQUAL(qkv_get(c, key, strlen(key), 0, NULL), QKV_ENOTFOUND);
    /* Deleting what is not there is a replicated entry too */
    qkv_result_t d2;
    CU_ASSERT_EQUAL_FATAL(qkv_delete(c, key, strlen(key), &d2), 0);
    CU_ASSERT(!d2.deleted);
    CU_ASSERT(d2.index > d.index);
    put_ok(c, key, "c", &r);
    CU_ASSERT_EQUAL(r.seq, 1);
    CU_ASSERT(r.index > d2.index);
    get_expect(c, key, 0, "c", 1, r.index);
    /* Followers see the deletion and the new value */
    qkv_client_t *f = client_to(NODES - 1, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(f != NULL);
    get_expect(f, key, r.index, "c", 1, r.index);
    qkv_client_destroy(&f);
    qkv_client_destroy(&c);
}

static void test_health(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    qkv_health_t h;
    CU_ASSERT_EQUAL_FATAL(qkv_health(c, &h), 0);
    KIT_ASSERT_STR(h.role, "leader");
    CU_ASSERT_EQUAL(h.follower_count, NODES - 1);
    CU_ASSERT(h.replication_id && *h.replication_id);
    CU_ASSERT(h.error && !*h.error);
    CU_ASSERT(h.commit_index <= h.last_index);
    for (size_t i = 0; i < h.follower_count; i++)
        CU_ASSERT(h.followers[i].endpoint && h.followers[i].id);
    /* The limits the leader was started with (needs the merged node) */
    CU_ASSERT_EQUAL(h.max_key_bytes, LEADER_MAX_KEY);
    CU_ASSERT_EQUAL(h.max_value_bytes, 1u << 20); /* the default */
    CU_ASSERT(h.max_frame_bytes >= h.max_key_bytes + h.max_value_bytes);
    char *repl_id = strdup(h.replication_id);
    qkv_health_clear(&h);
    CU_ASSERT(h.role == NULL);
    qkv_health_clear(&h); /* twice is fine */
    qkv_client_destroy(&c);

    for (size_t i = 1; i < NODES; i++) {
        qkv_client_t *f = client_to(i, CKIT_WAIT_MS);
        CU_ASSERT_FATAL(f != NULL);
        CU_ASSERT_EQUAL_FATAL(qkv_health(f, &h), 0);
        KIT_ASSERT_STR(h.role, "follower");
        CU_ASSERT_EQUAL(h.follower_count, 0);
        CU_ASSERT_EQUAL(h.max_key_bytes, 4096); /* the default */
        qkv_health_clear(&h);
        qkv_client_destroy(&f);
    }
    free(repl_id);
}

/* Waits until follower 1 knows the leader's client endpoint: a write
   through it then succeeds. */
typedef struct {
    qkv_client_t *client;
    const char *key;
    int rc;
} s_put_try_t;

static bool s_put_through(void *arg) {
    s_put_try_t *t = arg;
    t->rc =
        qkv_put(t->client, t->key, strlen(t->key), "via-follower", 12, NULL);
    return t->rc != QKV_ENOTLEADER;
}

static void test_not_leader_redirect(void) {
    char key[64];
    key_of(key, sizeof key, "redirect");
    qkv_client_t *f = client_to(1, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(f != NULL);
    KIT_ASSERT_STR(qkv_client_endpoint(f), s_ep[1]);
    s_put_try_t t = {f, key, 0};
    kit_poll_until(CKIT_WAIT_MS, s_put_through, &t);
    if (t.rc != 0)
        fprintf(stderr, "\n  put through a follower: %s: %s\n",
                qkv_strerror(t.rc), qkv_client_errmsg(f));
    CU_ASSERT_EQUAL_FATAL(t.rc, 0);
    /* The handle now talks to the leader */
    KIT_ASSERT_STR(qkv_client_endpoint(f), s_ep[0]);
    qkv_client_destroy(&f);

    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    get_expect(c, key, 0, "via-follower", 1, 0);
    qkv_client_destroy(&c);

    /* Pipelined writes through a follower are all redirected */
    f = client_to(2, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(f != NULL);
    for (int i = 0; i < 100; i++) {
        char k[64];
        snprintf(k, sizeof k, "t%s-redir-%d", s_tag, i);
        CU_ASSERT_EQUAL(qkv_submit_put(f, k, strlen(k), "x", 1, NULL, NULL), 0);
    }
    qkv_completion_t done[100];
    int got = 0;
    while (got < 100) {
        int n = qkv_poll(f, done + got, 100 - got, -1);
        CU_ASSERT_FATAL(n > 0);
        got += n;
    }
    int failed = 0;
    for (int i = 0; i < 100; i++)
        if (done[i].status != 0 && failed++ < 3)
            fprintf(stderr, "\n  redirected put: %s\n",
                    qkv_strerror(done[i].status));
    CU_ASSERT_EQUAL(failed, 0);
    KIT_ASSERT_STR(qkv_client_endpoint(f), s_ep[0]);
    qkv_client_destroy(&f);

    /* Without redirects the caller hears not_leader and the leader */
    qkv_client_options_t options = {.timeout_ms = CKIT_WAIT_MS,
                                    .max_redirects = -1};
    f = ckit_client(s_ep[3], &options);
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(qkv_put(f, key, strlen(key), "no", 2, NULL),
                    QKV_ENOTLEADER);
    if (!strstr(qkv_client_errmsg(f), s_ep[0]))
        fprintf(stderr, "\n  not_leader without %s: '%s'\n", s_ep[0],
                qkv_client_errmsg(f));
    CU_ASSERT(strstr(qkv_client_errmsg(f), s_ep[0]) != NULL);
    KIT_ASSERT_STR(qkv_client_endpoint(f), s_ep[3]);
    /* Reads are served by the follower itself, once it has applied the
       write (a follower learns of a commit a moment after the leader) */
    qkv_result_t at_leader;
    c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL_FATAL(qkv_get(c, key, strlen(key), 0, &at_leader), 0);
    free(at_leader.value);
    qkv_client_destroy(&c);
    get_expect(f, key, at_leader.index, "via-follower", 1, 0);
    qkv_client_destroy(&f);
}

static void test_min_index_on_followers(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    for (int round = 0; round < 3; round++) {
        char key[64], value[32];
        snprintf(key, sizeof key, "t%s-ryw-%d", s_tag, round);
        snprintf(value, sizeof value, "value-%d", round);
        qkv_result_t r;
        put_ok(c, key, value, &r);
        /* At once, on every follower: never an older answer */
        for (size_t i = 1; i < NODES; i++) {
            qkv_client_t *f = client_to(i, CKIT_WAIT_MS);
            CU_ASSERT_FATAL(f != NULL);
            get_expect(f, key, r.index, value, 1, r.index);
            qkv_client_destroy(&f);
        }
    }
    /* An index nobody reaches: not_ready once the wait is over */
    qkv_result_t r;
    put_ok(c, "t-ryw-far", "x", &r);
    qkv_client_t *f = client_to(1, 2000);
    int64_t start = kit_now_ms();
    int rc = qkv_get(f, "t-ryw-far", 9, r.index + 1000000, NULL);
    if (rc != QKV_ENOTREADY)
        fprintf(stderr, "\n  far min_index: %s: %s\n", qkv_strerror(rc),
                qkv_client_errmsg(f));
    CU_ASSERT_EQUAL(rc, QKV_ENOTREADY);
    CU_ASSERT(kit_now_ms() - start >= 1000);
    qkv_client_destroy(&f);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Pipelined calls */

typedef struct {
    uint64_t id;    /* from submit */
    int status;     /* from the completion; 1 = not yet */
    uint64_t index; /* from the completion */
    int seen;       /* completions for it */
} s_slot_t;

static void test_pipelined_10000(void) {
    qkv_client_options_t options = {.timeout_ms = 120000};
    qkv_client_t *c = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(c != NULL);
    s_slot_t *slots = calloc(PIPELINED, sizeof *slots);
    char key[64], value[64];
    /* Every write goes in before the first poll: one connection, all
       10 000 in flight. */
    for (int i = 0; i < PIPELINED; i++) {
        snprintf(key, sizeof key, "t%s-p%05d", s_tag, i);
        snprintf(value, sizeof value, "value-%d-%s", i, s_tag);
        slots[i].status = 1;
        CU_ASSERT_EQUAL_FATAL(qkv_submit_put(c, key, strlen(key), value,
                                             strlen(value), &slots[i],
                                             &slots[i].id),
                              0);
    }
    CU_ASSERT_EQUAL(qkv_outstanding(c), PIPELINED);
    CU_ASSERT_EQUAL(qkv_flush(c), 0);
    qkv_client_stats_t stats;
    qkv_client_stats(c, &stats);
    /* Thousands in flight at once on one connection */
    fprintf(stderr, "(peak in flight %llu) ",
            (unsigned long long)stats.peak_in_flight);
    CU_ASSERT(stats.peak_in_flight >= 2000);
    CU_ASSERT(stats.frames_sent >= PIPELINED / 1000);
    CU_ASSERT_EQUAL(qkv_flush(c), 0);

    qkv_completion_t *done = calloc(1000, sizeof *done);
    size_t completed = 0;
    int64_t deadline = kit_now_ms() + 180000;
    while (completed < PIPELINED && kit_now_ms() < deadline) {
        int n = qkv_poll(c, done, 1000, 1000);
        CU_ASSERT_FATAL(n >= 0);
        for (int i = 0; i < n; i++) {
            s_slot_t *slot = done[i].user;
            CU_ASSERT_FATAL(slot >= slots && slot < slots + PIPELINED);
            CU_ASSERT_EQUAL(done[i].id, slot->id);
            CU_ASSERT_EQUAL(done[i].kind, QKV_REQ_PUT);
            CU_ASSERT(done[i].value == NULL);
            slot->status = done[i].status;
            slot->index = done[i].index;
            slot->seen++;
        }
        completed += (size_t)n;
    }
    CU_ASSERT_EQUAL_FATAL(completed, PIPELINED);
    CU_ASSERT_EQUAL(qkv_outstanding(c), 0);
    CU_ASSERT_EQUAL(qkv_poll(c, done, 1000, 0), 0);
    uint64_t max_index = 0;
    size_t failed = 0;
    for (int i = 0; i < PIPELINED; i++) {
        CU_ASSERT_EQUAL(slots[i].seen, 1);
        if (slots[i].status != 0 && failed++ < 5)
            fprintf(stderr, "\n  write %d: %s\n", i,
                    qkv_strerror(slots[i].status));
        /* In order on one connection: the log keeps submission order */
        if (i > 0)
            CU_ASSERT(slots[i].index > slots[i - 1].index);
        if (slots[i].index > max_index)
            max_index = slots[i].index;
    }
    CU_ASSERT_EQUAL(failed, 0);

    /* Every node holds exactly the leader's entries */
    ckit_snapshot_t leader;
    CU_ASSERT_EQUAL_FATAL(ckit_snapshot(s_ep[0], max_index, &leader), 0);
    CU_ASSERT(leader.count >= PIPELINED);
    for (int i = 0; i < PIPELINED; i += 997) {
        snprintf(key, sizeof key, "t%s-p%05d", s_tag, i);
        snprintf(value, sizeof value, "value-%d-%s", i, s_tag);
        const qkv_item_t *item = ckit_snapshot_find(&leader, key);
        CU_ASSERT_FATAL(item != NULL);
        KIT_ASSERT_STR(item->value, value);
        CU_ASSERT_EQUAL(item->index, slots[i].index);
    }
    for (size_t n = 1; n < NODES; n++) {
        ckit_snapshot_t follower;
        CU_ASSERT_EQUAL_FATAL(ckit_snapshot(s_ep[n], max_index, &follower), 0);
        CU_ASSERT(follower.applied_index >= max_index);
        CU_ASSERT(ckit_snapshot_same(&leader, &follower));
        ckit_snapshot_free(&follower);
    }
    ckit_snapshot_free(&leader);
    free(done);
    free(slots);
    qkv_client_destroy(&c);
}

static void test_pipelined_mixed(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    enum { N = 100 };
    char key[64], value[64];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "t%s-m%d", s_tag, i);
        snprintf(value, sizeof value, "m%d", i);
        CU_ASSERT_EQUAL(qkv_submit_put(c, key, strlen(key), value,
                                       strlen(value), NULL, NULL),
                        0);
    }
    qkv_completion_t done[3 * N + 1];
    int got = 0;
    uint64_t max_index = 0;
    while (got < N) {
        int n = qkv_poll(c, done, N, -1);
        CU_ASSERT_FATAL(n > 0);
        for (int i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(done[i].status, 0);
            if (done[i].index > max_index)
                max_index = done[i].index;
        }
        got += n;
    }
    /* Gets (user = the key's number + 1), a missing key, deletes of the
       even keys */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "t%s-m%d", s_tag, i);
        CU_ASSERT_EQUAL(qkv_submit_get(c, key, strlen(key), max_index,
                                       (void *)(intptr_t)(i + 1), NULL),
                        0);
    }
    CU_ASSERT_EQUAL(
        qkv_submit_get(c, "t-missing-key", 13, 0, (void *)(intptr_t)-1, NULL),
        0);
    qkv_poll(c, done, 0, 0); /* sends, collects nothing */
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "t%s-m%d", s_tag, i);
        CU_ASSERT_EQUAL(qkv_submit_delete(c, key, strlen(key),
                                          (void *)(intptr_t)(1000 + i), NULL),
                        0);
    }
    got = 0;
    int total = N + 1 + N / 2;
    while (got < total) {
        int n = qkv_poll(c, done + got, (size_t)(total - got), -1);
        CU_ASSERT_FATAL(n > 0);
        got += n;
    }
    int gets = 0, deletes = 0;
    for (int i = 0; i < got; i++) {
        intptr_t user = (intptr_t)done[i].user;
        if (user == -1) {
            CU_ASSERT_EQUAL(done[i].kind, QKV_REQ_GET);
            CU_ASSERT_EQUAL(done[i].status, QKV_ENOTFOUND);
        } else if (user >= 1000) {
            CU_ASSERT_EQUAL(done[i].kind, QKV_REQ_DELETE);
            CU_ASSERT_EQUAL(done[i].status, 0);
            CU_ASSERT(done[i].deleted);
            deletes++;
        } else {
            CU_ASSERT_EQUAL(done[i].kind, QKV_REQ_GET);
            CU_ASSERT_EQUAL(done[i].status, 0);
            snprintf(value, sizeof value, "m%d", (int)user - 1);
            KIT_ASSERT_STR(done[i].value, value);
            CU_ASSERT_EQUAL(done[i].seq, 1);
            gets++;
        }
        free(done[i].value);
    }
    CU_ASSERT_EQUAL(gets, N);
    CU_ASSERT_EQUAL(deletes, N / 2);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Idempotent retries */

static uint64_t last_index(qkv_client_t *c) {
    qkv_health_t h;
    CU_ASSERT_EQUAL_FATAL(qkv_health(c, &h), 0);
    uint64_t index = h.last_index;
    qkv_health_clear(&h);
    return index;
}

/* A random client_id in 1 ... 2^53 - 1. */
static uint64_t random_client_id(void) {
    static kit_rng_t rng;
    static bool seeded;
    if (!seeded)
        kit_rng_seed(&rng, (uint64_t)kit_now_ms());
    seeded = true;
    uint64_t id = 0;
    while (!id)
        id = kit_rng_next(&rng) & QKV_CLIENT_ID_MAX;
    return id;
}

static void test_idempotent_retry(void) {
    uint64_t id = random_client_id();
    qkv_client_options_t options = {.timeout_ms = CKIT_WAIT_MS,
                                    .client_id = id};
    qkv_client_t *c = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(qkv_client_id(c), id);
    CU_ASSERT_EQUAL(qkv_client_next_seq(c), 1);
    char key[64];
    key_of(key, sizeof key, "idem");
    qkv_result_t first, again;
    put_ok(c, key, "original", &first);
    CU_ASSERT_EQUAL(qkv_client_next_seq(c), 2);
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, NULL));
    uint64_t before = last_index(c);

    /* The same (client_id, client_seq) again: the original answer */
    CU_ASSERT_EQUAL(qkv_client_set_next_seq(c, 1), 0);
    put_ok(c, key, "original", &again);
    CU_ASSERT_EQUAL(again.index, first.index);
    CU_ASSERT_EQUAL(again.seq, first.seq);
    /* And from another handle with the same identity */
    qkv_client_t *twin = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(twin != NULL);
    put_ok(twin, key, "original", &again);
    CU_ASSERT_EQUAL(again.index, first.index);
    qkv_client_destroy(&twin);
    CU_ASSERT_EQUAL(last_index(c), before);
    get_expect(c, key, 0, "original", first.seq, first.index);

    /* A new seq is a new write */
    CU_ASSERT_EQUAL(qkv_client_set_next_seq(c, 2), 0);
    put_ok(c, key, "next", &again);
    CU_ASSERT(again.index > first.index);
    CU_ASSERT_EQUAL(again.seq, first.seq + 1);
    qkv_client_destroy(&c);
}

/* A pair reused with other content is a conflict; a seq above 1 from a
   client the leader does not know has expired. Neither changes a key
   (the expired one may take a log index as a no-op: every node decides
   it when it applies the entry). */
static void test_conflict_and_expired(void) {
    qkv_client_options_t options = {.timeout_ms = CKIT_WAIT_MS,
                                    .client_id = random_client_id()};
    qkv_client_t *c = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(c != NULL);
    char key[64];
    key_of(key, sizeof key, "conflict");
    qkv_result_t first;
    put_ok(c, key, "original", &first);
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, NULL));
    uint64_t before = last_index(c);
    CU_ASSERT_EQUAL(qkv_client_set_next_seq(c, 1), 0);
    int rc = qkv_put(c, key, strlen(key), "changed", 7, NULL);
    if (rc != QKV_ECONFLICT)
        fprintf(stderr, "\n  reused pair, other value: %s: %s\n",
                qkv_strerror(rc), qkv_client_errmsg(c));
    CU_ASSERT_EQUAL(rc, QKV_ECONFLICT);
    get_expect(c, key, 0, "original", first.seq, first.index);
    /* the original was applied: the leader refused it at the door */
    CU_ASSERT_EQUAL(last_index(c), before);
    qkv_client_destroy(&c);

    /* An identity the leader never saw, starting at seq 5 */
    qkv_client_options_t late = {.timeout_ms = CKIT_WAIT_MS,
                                 .client_id = random_client_id(),
                                 .first_seq = 5};
    c = ckit_client(s_ep[0], &late);
    CU_ASSERT_FATAL(c != NULL);
    key_of(key, sizeof key, "expired");
    rc = qkv_put(c, key, strlen(key), "never", 5, NULL);
    if (rc != QKV_ESESSION_EXPIRED)
        fprintf(stderr, "\n  unknown client at seq 5: %s: %s\n",
                qkv_strerror(rc), qkv_client_errmsg(c));
    CU_ASSERT_EQUAL(rc, QKV_ESESSION_EXPIRED);
    CU_ASSERT_EQUAL(qkv_get(c, key, strlen(key), 0, NULL), QKV_ENOTFOUND);
    qkv_client_destroy(&c);
}

/* A leader that stops answering (SIGSTOP) for longer than retry_ms makes
   the handle reconnect and send everything again; once it runs again,
   every write is answered and none is appended twice. */
static void *s_continue_later(void *arg) {
    struct timespec ts = {1, 500 * 1000000L};
    nanosleep(&ts, NULL);
    kill(*(pid_t *)arg, SIGCONT);
    return NULL;
}

static void test_stalled_leader_retries(void) {
    enum { N = 3000 };
    pid_t leader = s_cluster.nodes[0].pid;
    CU_ASSERT_FATAL(leader > 0);
    qkv_client_options_t options = {.timeout_ms = 120000, .retry_ms = 300};
    qkv_client_t *c = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(c != NULL);
    uint64_t before = 0;
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, &before));

    /* Pipelined: stopped while the writes are in flight */
    uint64_t *index = calloc(N, sizeof *index);
    char key[64];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "t%s-stall%d", s_tag, i);
        CU_ASSERT_EQUAL_FATAL(
            qkv_submit_put(c, key, strlen(key), "s", 1, &index[i], NULL), 0);
    }
    CU_ASSERT_EQUAL(qkv_flush(c), 0);
    kill(leader, SIGSTOP);
    qkv_completion_t done[500];
    int got = 0, failed = 0;
    int64_t resume = kit_now_ms() + 1500;
    bool stopped = true;
    while (got < N) {
        if (stopped && kit_now_ms() >= resume) {
            kill(leader, SIGCONT);
            stopped = false;
        }
        int n = qkv_poll(c, done, 500, 100);
        CU_ASSERT_FATAL(n >= 0);
        for (int i = 0; i < n; i++) {
            failed += done[i].status != 0;
            *(uint64_t *)done[i].user = done[i].index;
        }
        got += n;
    }
    if (stopped)
        kill(leader, SIGCONT);
    CU_ASSERT_EQUAL(failed, 0);
    qkv_client_stats_t stats;
    qkv_client_stats(c, &stats);
    CU_ASSERT(stats.failovers >= 1);
    CU_ASSERT(stats.resent >= 1);
    for (int i = 1; i < N; i++)
        CU_ASSERT(index[i] > index[i - 1]);
    free(index);

    /* Blocking: the put waits through the stop and is applied once */
    uint64_t middle = 0;
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, &middle));
    CU_ASSERT_EQUAL(middle, before + N);
    pthread_t thread;
    kill(leader, SIGSTOP);
    CU_ASSERT_FATAL(pthread_create(&thread, NULL, s_continue_later, &leader) ==
                    0);
    key_of(key, sizeof key, "stall-blocking");
    qkv_result_t r;
    put_ok(c, key, "once", &r);
    pthread_join(thread, NULL);
    CU_ASSERT_EQUAL(r.index, middle + 1);
    /* Silent for 1.5 s with retry_ms 300: the client probed and either
       asked again or failed over (a request still queued behind a
       failover is sent fresh, not counted as resent). */
    qkv_client_stats_t later;
    qkv_client_stats(c, &later);
    bool retried =
        later.resent > stats.resent || later.failovers > stats.failovers;
    if (!retried)
        fprintf(stderr, "\n  resent %llu -> %llu, failovers %llu -> %llu\n",
                (unsigned long long)stats.resent,
                (unsigned long long)later.resent,
                (unsigned long long)stats.failovers,
                (unsigned long long)later.failovers);
    CU_ASSERT(retried);
    uint64_t after = 0;
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, &after));
    CU_ASSERT_EQUAL(after, middle + 1);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Failures: timeouts, bad arguments, fallbacks, limits */

static void test_timeouts_and_arguments(void) {
    char err[256] = "";
    CU_ASSERT(qkv_client_new("nonsense", NULL, err, sizeof err) == NULL);
    CU_ASSERT(*err != '\0');
    CU_ASSERT(qkv_client_new("", NULL, NULL, 0) == NULL);
    CU_ASSERT(qkv_client_new(NULL, NULL, NULL, 0) == NULL);
    CU_ASSERT(qkv_client_new("tcp://127.0.0.1:1,bad", NULL, NULL, 0) == NULL);
    KIT_ASSERT_STR(qkv_strerror(QKV_ETIMEOUT), "timed out");
    CU_ASSERT(qkv_strerror(12345) != NULL);

    /* Nobody listens: every request times out, none waits longer */
    char dead[64];
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", kit_free_port());
    qkv_client_options_t options = {
        .timeout_ms = 800, .retry_ms = 200, .max_inflight = 10};
    qkv_client_t *c = ckit_client(dead, &options);
    CU_ASSERT_FATAL(c != NULL);
    int64_t start = kit_now_ms();
    CU_ASSERT_EQUAL(qkv_put(c, "k", 1, "v", 1, NULL), QKV_ETIMEOUT);
    int64_t took = kit_now_ms() - start;
    CU_ASSERT(took >= 700 && took < 5000);
    CU_ASSERT(*qkv_client_errmsg(c) != '\0');
    qkv_result_t r;
    CU_ASSERT_EQUAL(qkv_get(c, "k", 1, 0, &r), QKV_ETIMEOUT);
    CU_ASSERT(r.value == NULL);

    /* The window: max_inflight, then QKV_EAGAIN */
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(qkv_submit_get(c, "k", 1, 0, NULL, NULL), 0);
    CU_ASSERT_EQUAL(qkv_submit_get(c, "k", 1, 0, NULL, NULL), QKV_EAGAIN);
    qkv_completion_t done[10];
    int got = 0;
    start = kit_now_ms();
    while (got < 10) {
        int n = qkv_poll(c, done + got, (size_t)(10 - got), -1);
        CU_ASSERT_FATAL(n > 0);
        got += n;
    }
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(done[i].status, QKV_ETIMEOUT);
    CU_ASSERT(kit_now_ms() - start < 5000);
    /* Nothing outstanding: poll returns at once */
    CU_ASSERT_EQUAL(qkv_poll(c, done, 10, -1), 0);

    /* Bad keys and values never leave the process */
    CU_ASSERT_EQUAL(qkv_put(c, "", 0, "v", 1, NULL), QKV_EINVAL);
    CU_ASSERT_EQUAL(qkv_get(c, NULL, 0, 0, NULL), QKV_EINVAL);
    CU_ASSERT_EQUAL(qkv_submit_delete(c, "", 0, NULL, NULL), QKV_EINVAL);
    size_t big = (1u << 20) + 1;
    char *huge = calloc(1, big);
    memset(huge, 'k', big);
    CU_ASSERT_EQUAL(qkv_get(c, huge, big, 0, NULL), QKV_ETOOLARGE);
    free(huge);
    qkv_client_destroy(&c);
}

static void test_value_too_large_for_node(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    size_t big = (1u << 20) + 1; /* MAX_VALUE_BYTES + 1 */
    char *value = malloc(big);
    memset(value, 'v', big);
    int rc = qkv_put(c, "t-too-large", 11, value, big, NULL);
    CU_ASSERT_EQUAL(rc, QKV_ETOOLARGE);
    free(value);
    /* The connection is still good */
    char key[64];
    key_of(key, sizeof key, "after-large");
    put_ok(c, key, "fine", NULL);
    qkv_client_destroy(&c);
}

static void test_fallback_endpoint(void) {
    char list[160];
    snprintf(list, sizeof list, "tcp://127.0.0.1:%d, %s", kit_free_port(),
             s_ep[0]);
    qkv_client_options_t options = {.timeout_ms = 20000, .retry_ms = 300};
    qkv_client_t *c = ckit_client(list, &options);
    CU_ASSERT_FATAL(c != NULL);
    char key[64];
    key_of(key, sizeof key, "fallback");
    int64_t start = kit_now_ms();
    put_ok(c, key, "found", NULL);
    CU_ASSERT(kit_now_ms() - start < 10000);
    KIT_ASSERT_STR(qkv_client_endpoint(c), s_ep[0]);
    get_expect(c, key, 0, "found", 1, 0);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    The node's side of the protocol's edges, through a raw DEALER */

typedef struct {
    void *ctx, *sock;
    qkv_decoder_t *dec;
    qkv_encoder_t *enc;
} s_raw_t;

static void raw_open(s_raw_t *r, const char *endpoint) {
    r->ctx = zmq_ctx_new();
    r->sock = zmq_socket(r->ctx, ZMQ_DEALER);
    int linger = 0, timeout = CKIT_WAIT_MS;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(r->sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    CU_ASSERT_FATAL(zmq_connect(r->sock, endpoint) == 0);
    qkv_decoder_limits_t lim = {1u << 28, QKV_CMSG_MAX_KEY, QKV_CMSG_MAX_VALUE};
    r->dec = qkv_decoder_new(&lim);
    r->enc = qkv_encoder_new();
    CU_ASSERT_FATAL(r->dec && r->enc);
}

static void raw_close(s_raw_t *r) {
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
    qkv_decoder_destroy(&r->dec);
    qkv_encoder_destroy(&r->enc);
}

/* Sends bytes and returns the one result of the answer frame (valid until
   the next call), or NULL. */
static const qkv_cres_t *raw_ask(s_raw_t *r, const void *data, size_t size) {
    static zmq_msg_t msg;
    static bool have;
    if (have)
        zmq_msg_close(&msg);
    have = false;
    CU_ASSERT_FATAL(zmq_send(r->sock, data, size, 0) == (int)size);
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, r->sock, 0) < 0) {
        zmq_msg_close(&msg);
        return NULL;
    }
    have = true;
    const qkv_cres_t *res;
    size_t n;
    if (qkv_cdec_results(r->dec, zmq_msg_data(&msg), zmq_msg_size(&msg), &res,
                         &n) != 0 ||
        n != 1)
        return NULL;
    return res;
}

/* Encodes one request and asks it. */
static const qkv_cres_t *raw_request(s_raw_t *r, const qkv_creq_t *req) {
    qkv_cenc_begin(r->enc, 1);
    qkv_cenc_request(r->enc, req);
    size_t size;
    const void *data = qkv_encoder_data(r->enc, &size);
    CU_ASSERT_FATAL(data != NULL);
    return raw_ask(r, data, size);
}

static void expect_bad(const qkv_cres_t *res, uint64_t id, const char *text) {
    CU_ASSERT_FATAL(res != NULL);
    CU_ASSERT_EQUAL(res->id, id);
    CU_ASSERT_EQUAL(res->status, QKV_CS_BAD_REQUEST);
    bool named = res->message &&
                 memmem(res->message, res->message_len, text, strlen(text));
    if (!named)
        fprintf(stderr, "\n  expected \"%s\" in: %.*s\n", text,
                (int)res->message_len, res->message ? res->message : "");
    CU_ASSERT(named);
}

static void test_node_frame_rules(void) {
    s_raw_t r;
    raw_open(&r, s_ep[0]);
    /* id 0 is reserved: the whole frame is a frame error, nothing done */
    char key[64];
    key_of(key, sizeof key, "id-zero");
    qkv_creq_t put = {.id = 0,
                      .op = QKV_COP_PUT,
                      .key = key,
                      .key_len = strlen(key),
                      .value = "v",
                      .value_len = 1};
    expect_bad(raw_request(&r, &put), 0, "id 0 (reserved)");
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(qkv_get(c, key, strlen(key), 0, NULL), QKV_ENOTFOUND);
    /* the message says which rule the frame broke */
    expect_bad(raw_ask(&r, "\xc1", 1), 0, "not msgpack");
    expect_bad(raw_ask(&r, "\x90", 1), 0, "empty array");
    expect_bad(raw_ask(&r, "\x91\x01", 2), 0, "request 0 is not a map");
    /* bounds are refused under the request's id, naming the field */
    qkv_creq_t get = {.id = 7,
                      .op = QKV_COP_GET,
                      .key = key,
                      .key_len = strlen(key),
                      .min_index = 1,
                      .wait_ms = 60001};
    expect_bad(raw_request(&r, &get), 7, "wait_ms");
    qkv_creq_t dump = {.id = 8, .op = QKV_COP_DUMP, .limit = 10001};
    expect_bad(raw_request(&r, &dump), 8, "limit");
    /* a cursor this node never handed out */
    dump.limit = 1;
    dump.cursor = 12345;
    expect_bad(raw_request(&r, &dump), 8, "unknown cursor");
    /* one it did hand out goes on */
    put_ok(c, key, "x", NULL);
    char key2[64];
    key_of(key2, sizeof key2, "id-zero-2");
    put_ok(c, key2, "y", NULL);
    dump.cursor = 0;
    const qkv_cres_t *res = raw_request(&r, &dump);
    CU_ASSERT_FATAL(res && res->status == QKV_CS_OK && res->has_next);
    CU_ASSERT_EQUAL(res->item_count, 1);
    dump.cursor = res->next;
    CU_ASSERT_FATAL(dump.cursor != 0);
    res = raw_request(&r, &dump);
    CU_ASSERT_FATAL(res != NULL);
    CU_ASSERT_EQUAL(res->status, QKV_CS_OK);
    qkv_client_destroy(&c);
    raw_close(&r);
}

/* Keys and values may come as msgpack bin; answers carry them as str. */
static void test_node_takes_bin(void) {
    s_raw_t r;
    raw_open(&r, s_ep[0]);
    char key[64];
    key_of(key, sizeof key, "bin");
    uint8_t frame[128];
    size_t n = 0, klen = strlen(key);
    frame[n++] = 0x91; /* [ */
    frame[n++] = 0x84; /* { 4 pairs */
    memcpy(frame + n, "\xa2id\x05\xa2op\xa3put\xa3key", 15);
    n += 15;
    frame[n++] = 0xc4; /* bin8 key */
    frame[n++] = (uint8_t)klen;
    memcpy(frame + n, key, klen);
    n += klen;
    memcpy(frame + n,
           "\xa5value\xc4\x03"
           "b\x00n",
           11);
    n += 11;
    const qkv_cres_t *res = raw_ask(&r, frame, n);
    CU_ASSERT_FATAL(res != NULL);
    if (res->status != QKV_CS_OK)
        fprintf(stderr, "\n  a put with bin key and value: %s %.*s\n",
                qkv_cstatus_name(res->status), (int)res->message_len,
                res->message ? res->message : "");
    CU_ASSERT_EQUAL(res->id, 5);
    CU_ASSERT_EQUAL(res->status, QKV_CS_OK);
    qkv_creq_t get = {.id = 6, .op = QKV_COP_GET, .key = key, .key_len = klen};
    res = raw_request(&r, &get);
    CU_ASSERT_FATAL(res && res->status == QKV_CS_OK);
    CU_ASSERT(res->value_len == 3 && memcmp(res->value, "b\0n", 3) == 0);
    raw_close(&r);
}

/* The leader's /metrics value of a sample (name with its labels). */
static double metric_of(const char *sample) {
    char url[sizeof s_cluster.nodes[0].url + 16], *body = NULL;
    long status = 0;
    snprintf(url, sizeof url, "%s/metrics", s_cluster.nodes[0].url);
    double v = -1;
    if (kit_http_get(url, &status, &body) == 0 && status == 200)
        kit_prom_value(body, sample, &v);
    free(body);
    return v;
}

/* zmq-native writes are counted under proto="zmq", as REST ones under
   proto="rest". */
static void test_metrics_count_zmq_writes(void) {
    double writes = metric_of("qkv_writes_total{proto=\"zmq\"}");
    double commits = metric_of("qkv_commits_total{proto=\"zmq\"}");
    double observed =
        metric_of("qkv_write_latency_seconds_count{proto=\"zmq\"}");
    double rest = metric_of("qkv_writes_total{proto=\"rest\"}");
    CU_ASSERT_FATAL(writes >= 0 && commits >= 0 && observed >= 0 && rest >= 0);
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    for (int i = 0; i < 20; i++) {
        char key[64];
        snprintf(key, sizeof key, "t%s-counted-%d", s_tag, i);
        put_ok(c, key, "v", NULL);
    }
    qkv_client_destroy(&c);
    CU_ASSERT(metric_of("qkv_writes_total{proto=\"zmq\"}") >= writes + 20);
    CU_ASSERT(metric_of("qkv_commits_total{proto=\"zmq\"}") >= commits + 20);
    CU_ASSERT(metric_of("qkv_write_latency_seconds_count{proto=\"zmq\"}") >=
              observed + 20);
    double rest_after = metric_of("qkv_writes_total{proto=\"rest\"}");
    if (rest_after != rest)
        fprintf(stderr, "\n  REST writes went from %g to %g\n", rest,
                rest_after);
    CU_ASSERT(rest_after == rest);
}

/* A frame over max_frame_bytes is dropped with its connection; the node
   counts the disconnect and serves the next connection. */
static void test_oversize_frame_counted(void) {
    double before = metric_of("qkv_client_disconnects_total");
    CU_ASSERT_FATAL(before >= 0);
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    qkv_health_t h;
    CU_ASSERT_FATAL(qkv_health(c, &h) == 0);
    size_t size = (size_t)h.max_frame_bytes + 1;
    qkv_health_clear(&h);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    CU_ASSERT_FATAL(zmq_connect(s, s_ep[0]) == 0);
    char *big = calloc(1, size);
    CU_ASSERT_FATAL(big != NULL);
    big[0] = (char)0xc4; /* whatever it holds, it is too large */
    CU_ASSERT(zmq_send(s, big, size, 0) == (int)size);
    free(big);
    int64_t deadline = kit_now_ms() + CKIT_WAIT_MS;
    while (metric_of("qkv_client_disconnects_total") <= before &&
           kit_now_ms() < deadline) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT(metric_of("qkv_client_disconnects_total") > before);
    zmq_close(s);
    zmq_ctx_term(ctx);
    char key[64];
    key_of(key, sizeof key, "after-oversize");
    put_ok(c, key, "fine", NULL);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Fake nodes */

/* What a fake node saw and how it answers. */
typedef struct {
    atomic_int puts;        /* put requests seen */
    atomic_int dumps;       /* dump requests with cursor 0 */
    atomic_int cursors;     /* dump requests with a cursor */
    atomic_int healths;     /* health requests */
    bool silent_cursors;    /* never answer a dump with a cursor */
    bool silent_health;     /* never answer health */
    atomic_bool silent_all; /* answer nothing */
    atomic_int refusals;    /* puts of keys n, l, q: answered no_leader,
                               leader_changed, quorum_not_reached this
                               many times first (N: always no_leader) */
    const char *item;       /* the one key (= value) of its dump */
    uint64_t next;          /* the cursor its first chunk hands out */
    qkv_citem_t answer;     /* the fake's thread only: the dump's item */
} s_fake_state_t;

static qkv_chealth_t s_fake_health = {.role = "leader",
                                      .role_len = 6,
                                      .node_id = "fake",
                                      .node_id_len = 4,
                                      .replication_id = "r",
                                      .replication_id_len = 1,
                                      .error = "",
                                      .max_key_bytes = 111,
                                      .max_value_bytes = 2222,
                                      .max_frame_bytes = 33333};

/* Puts: the status by the key's first letter (c conflict, s
   session_expired, else ok); dumps: one item then the state's cursor, a
   cursor is "unknown"; health: s_fake_health. */
static bool s_fake_answer(const qkv_creq_t *req, qkv_cres_t *res, void *arg) {
    s_fake_state_t *st = arg;
    if (atomic_load(&st->silent_all))
        return false;
    switch (req->op) {
    case QKV_COP_PUT:
        atomic_fetch_add(&st->puts, 1);
        if (req->key[0] == 'N' || (strchr("nlq", req->key[0]) &&
                                   atomic_fetch_sub(&st->refusals, 1) > 0)) {
            res->status = req->key[0] == 'l'   ? QKV_CS_LEADER_CHANGED
                          : req->key[0] == 'q' ? QKV_CS_QUORUM_NOT_REACHED
                                               : QKV_CS_NO_LEADER;
            res->message = "fake refusal";
            res->message_len = strlen(res->message);
            res->has_index = res->status != QKV_CS_NO_LEADER;
            res->index = 7;
            return true;
        }
        if (req->key[0] == 'c' || req->key[0] == 's') {
            bool c = req->key[0] == 'c';
            res->status = c ? QKV_CS_CONFLICT : QKV_CS_SESSION_EXPIRED;
            res->message = c ? "fake conflict" : "fake expiry";
            res->message_len = strlen(res->message);
            return true;
        }
        res->status = QKV_CS_OK;
        res->has_index = res->has_seq = true;
        res->index = req->client_seq; /* for the test to read back */
        res->seq = 1;
        return true;
    case QKV_COP_DUMP:
        if (req->cursor) {
            atomic_fetch_add(&st->cursors, 1);
            if (st->silent_cursors)
                return false;
            res->status = QKV_CS_BAD_REQUEST;
            res->message = "unknown cursor";
            res->message_len = 14;
            return true;
        }
        atomic_fetch_add(&st->dumps, 1);
        st->answer = (qkv_citem_t){
            st->item, strlen(st->item), st->item, strlen(st->item), 1, 1};
        res->status = QKV_CS_OK;
        res->items = &st->answer;
        res->item_count = 1;
        res->has_next = true;
        res->next = st->next;
        res->applied_index = 1;
        return true;
    case QKV_COP_HEALTH:
        atomic_fetch_add(&st->healths, 1);
        if (st->silent_health)
            return false;
        res->status = QKV_CS_OK;
        res->health = &s_fake_health;
        return true;
    default:
        res->status = QKV_CS_BAD_REQUEST;
        res->message = "not faked";
        res->message_len = 9;
        return true;
    }
}

/* no_leader, leader_changed and quorum_not_reached: the write goes again
   with the same client_seq until an answer settles it or its deadline
   passes; then the caller hears the last of them, not a timeout. */
static void test_fake_retries(void) {
    s_fake_state_t st = {.item = "x"};
    ckit_fake_t *fake = ckit_fake_new(s_fake_answer, &st);
    CU_ASSERT_FATAL(fake != NULL);
    qkv_client_options_t options = {.timeout_ms = 3000, .retry_ms = 100};
    qkv_client_t *c = ckit_client(ckit_fake_endpoint(fake), &options);
    CU_ASSERT_FATAL(c != NULL);
    const char *keys[] = {"n1", "l1", "q1"};
    uint64_t retried = 0;
    for (size_t k = 0; k < 3; k++) {
        atomic_store(&st.refusals, 2);
        int puts = atomic_load(&st.puts);
        qkv_result_t r;
        CU_ASSERT_EQUAL(qkv_put(c, keys[k], 2, "v", 1, &r), 0);
        CU_ASSERT_EQUAL(atomic_load(&st.puts) - puts, 3);
        qkv_client_stats_t stats;
        qkv_client_stats(c, &stats);
        CU_ASSERT_EQUAL(stats.retried - retried, 2);
        retried = stats.retried;
        /* the same pair every time: r.index is the fake's client_seq */
        CU_ASSERT_EQUAL(r.index, k + 1);
    }
    /* never a leader: no_leader once the deadline is near, not a timeout */
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL(qkv_put(c, "N1", 2, "v", 1, NULL), QKV_ENO_LEADER);
    CU_ASSERT(kit_now_ms() - t0 < 4000);
    CU_ASSERT(strstr(qkv_client_errmsg(c), "fake refusal") != NULL);
    /* pipelined too */
    atomic_store(&st.refusals, 1);
    CU_ASSERT_EQUAL(qkv_submit_put(c, "l2", 2, "v", 1, NULL, NULL), 0);
    qkv_completion_t done;
    CU_ASSERT_EQUAL(qkv_poll(c, &done, 1, 3000), 1);
    CU_ASSERT_EQUAL(done.status, 0);
    qkv_client_destroy(&c);
    ckit_fake_destroy(&fake);
}

static void test_fake_conflict_and_expired(void) {
    s_fake_state_t st = {.item = "x"};
    ckit_fake_t *fake = ckit_fake_new(s_fake_answer, &st);
    CU_ASSERT_FATAL(fake != NULL);
    qkv_client_options_t options = {.timeout_ms = 5000, .retry_ms = 100};
    qkv_client_t *c = ckit_client(ckit_fake_endpoint(fake), &options);
    CU_ASSERT_FATAL(c != NULL);
    qkv_result_t r;
    CU_ASSERT_EQUAL(qkv_put(c, "c1", 2, "v", 1, &r), QKV_ECONFLICT);
    CU_ASSERT(strstr(qkv_client_errmsg(c), "fake conflict") != NULL);
    CU_ASSERT_EQUAL(qkv_put(c, "s1", 2, "v", 1, &r), QKV_ESESSION_EXPIRED);
    CU_ASSERT(strstr(qkv_client_errmsg(c), "fake expiry") != NULL);
    /* Pipelined: the same codes in the completions */
    CU_ASSERT_EQUAL(qkv_submit_put(c, "c2", 2, "v", 1, NULL, NULL), 0);
    CU_ASSERT_EQUAL(qkv_submit_put(c, "s2", 2, "v", 1, NULL, NULL), 0);
    CU_ASSERT_EQUAL(qkv_submit_put(c, "ok", 2, "v", 1, NULL, NULL), 0);
    qkv_completion_t done[3];
    int got = 0;
    while (got < 3) {
        int n = qkv_poll(c, done + got, (size_t)(3 - got), 2000);
        CU_ASSERT_FATAL(n > 0);
        got += n;
    }
    int conflicts = 0, expired = 0, ok = 0;
    for (int i = 0; i < 3; i++) {
        conflicts += done[i].status == QKV_ECONFLICT;
        expired += done[i].status == QKV_ESESSION_EXPIRED;
        ok += done[i].status == 0;
    }
    CU_ASSERT(conflicts == 1 && expired == 1 && ok == 1);
    /* Neither is retried: well past retry_ms, the node saw each once */
    struct timespec half = {0, 500 * 1000000L};
    nanosleep(&half, NULL);
    CU_ASSERT_EQUAL(atomic_load(&st.puts), 5);
    qkv_client_stats_t stats;
    qkv_client_stats(c, &stats);
    CU_ASSERT_EQUAL(stats.resent, 0);
    KIT_ASSERT_STR(qkv_strerror(QKV_ESESSION_EXPIRED), "session expired");
    CU_ASSERT(strstr(qkv_strerror(QKV_ECONFLICT), "conflict") != NULL);
    qkv_client_destroy(&c);
    ckit_fake_destroy(&fake);
}

static void test_fake_health_limits(void) {
    s_fake_state_t st = {.item = "x"};
    ckit_fake_t *fake = ckit_fake_new(s_fake_answer, &st);
    CU_ASSERT_FATAL(fake != NULL);
    qkv_client_options_t options = {.timeout_ms = 5000};
    qkv_client_t *c = ckit_client(ckit_fake_endpoint(fake), &options);
    CU_ASSERT_FATAL(c != NULL);
    qkv_health_t h;
    CU_ASSERT_EQUAL_FATAL(qkv_health(c, &h), 0);
    KIT_ASSERT_STR(h.node_id, "fake");
    CU_ASSERT_EQUAL(h.max_key_bytes, 111);
    CU_ASSERT_EQUAL(h.max_value_bytes, 2222);
    CU_ASSERT_EQUAL(h.max_frame_bytes, 33333);
    qkv_health_clear(&h);
    qkv_client_destroy(&c);
    ckit_fake_destroy(&fake);
}

/* A dump whose node falls silent after its first chunk: the handle fails
   over to the next endpoint, and the chunk that needs the first node's
   cursor fails with QKV_EBADREQ instead of going there. */
static void test_dump_cursor_failover(void) {
    s_fake_state_t a = {
        .item = "a", .next = 5, .silent_cursors = true, .silent_health = true};
    s_fake_state_t b = {.item = "b", .next = 0};
    ckit_fake_t *fa = ckit_fake_new(s_fake_answer, &a);
    ckit_fake_t *fb = ckit_fake_new(s_fake_answer, &b);
    CU_ASSERT_FATAL(fa && fb);
    char list[160];
    snprintf(list, sizeof list, "%s,%s", ckit_fake_endpoint(fa),
             ckit_fake_endpoint(fb));
    qkv_client_options_t options = {.timeout_ms = 10000, .retry_ms = 200};

    /* Failover while the cursor's chunk is in flight */
    qkv_client_t *c = ckit_client(list, &options);
    CU_ASSERT_FATAL(c != NULL);
    qkv_dump_t *d = qkv_dump_new(c, 0, 0);
    const qkv_item_t *item;
    CU_ASSERT_EQUAL_FATAL(qkv_dump_next(d, &item), 0);
    CU_ASSERT_FATAL(item != NULL);
    KIT_ASSERT_STR(item->key, "a");
    int64_t start = kit_now_ms();
    int rc = qkv_dump_next(d, &item);
    if (rc != QKV_EBADREQ)
        fprintf(stderr, "\n  dump across a failover: %s: %s\n",
                qkv_strerror(rc), qkv_client_errmsg(c));
    CU_ASSERT_EQUAL(rc, QKV_EBADREQ);
    CU_ASSERT(item == NULL);
    CU_ASSERT(kit_now_ms() - start < 5000);
    CU_ASSERT(strstr(qkv_client_errmsg(c), "cursor") != NULL);
    KIT_ASSERT_STR(qkv_client_endpoint(c), ckit_fake_endpoint(fb));
    CU_ASSERT_EQUAL(atomic_load(&a.cursors), 1);
    CU_ASSERT_EQUAL(atomic_load(&b.cursors), 0);
    /* It stays failed; a new dump starts cleanly on the new node */
    CU_ASSERT_EQUAL(qkv_dump_next(d, &item), QKV_EBADREQ);
    qkv_dump_destroy(&d);
    d = qkv_dump_new(c, 0, 0);
    CU_ASSERT_EQUAL_FATAL(qkv_dump_next(d, &item), 0);
    CU_ASSERT_FATAL(item != NULL);
    KIT_ASSERT_STR(item->key, "b");
    CU_ASSERT_EQUAL(qkv_dump_next(d, &item), 0);
    CU_ASSERT(item == NULL);
    qkv_dump_destroy(&d);
    qkv_client_destroy(&c);

    /* Failover between two chunks, caused by another call */
    c = ckit_client(list, &options);
    CU_ASSERT_FATAL(c != NULL);
    d = qkv_dump_new(c, 0, 0);
    CU_ASSERT_EQUAL_FATAL(qkv_dump_next(d, &item), 0);
    KIT_ASSERT_STR(item ? item->key : NULL, "a");
    qkv_health_t h;
    CU_ASSERT_EQUAL_FATAL(qkv_health(c, &h), 0); /* answered by b */
    qkv_health_clear(&h);
    KIT_ASSERT_STR(qkv_client_endpoint(c), ckit_fake_endpoint(fb));
    CU_ASSERT_EQUAL(qkv_dump_next(d, &item), QKV_EBADREQ);
    CU_ASSERT_EQUAL(atomic_load(&a.cursors), 1); /* not sent anywhere */
    CU_ASSERT_EQUAL(atomic_load(&b.cursors), 0);
    qkv_dump_destroy(&d);
    qkv_client_destroy(&c);

    ckit_fake_destroy(&fa);
    ckit_fake_destroy(&fb);

    /* A node that does not know the cursor says so: also QKV_EBADREQ */
    s_fake_state_t forgetful = {.item = "f", .next = 9};
    ckit_fake_t *ff = ckit_fake_new(s_fake_answer, &forgetful);
    CU_ASSERT_FATAL(ff != NULL);
    c = ckit_client(ckit_fake_endpoint(ff), &options);
    CU_ASSERT_FATAL(c != NULL);
    d = qkv_dump_new(c, 0, 0);
    CU_ASSERT_EQUAL_FATAL(qkv_dump_next(d, &item), 0);
    CU_ASSERT_EQUAL(qkv_dump_next(d, &item), QKV_EBADREQ);
    CU_ASSERT(strstr(qkv_client_errmsg(c), "unknown cursor") != NULL);
    CU_ASSERT_EQUAL(atomic_load(&forgetful.cursors), 1);
    /* and a limit above 10000 never leaves the process */
    qkv_dump_destroy(&d);
    d = qkv_dump_new(c, 0, 10001);
    CU_ASSERT_EQUAL(qkv_dump_next(d, &item), QKV_EINVAL);
    CU_ASSERT_EQUAL(atomic_load(&forgetful.dumps), 1);
    qkv_dump_destroy(&d);
    qkv_client_destroy(&c);
    ckit_fake_destroy(&ff);
}

/* client_id and client_seq stay in 1 ... 2^53 - 1. */
static void test_client_id_range(void) {
    char dead[64];
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", kit_free_port());
    /* Random ids: 64 random bits would pass 2^53 in all but 1 of 2048 */
    for (int i = 0; i < 200; i++) {
        qkv_client_t *c = ckit_client(dead, NULL);
        CU_ASSERT_FATAL(c != NULL);
        uint64_t id = qkv_client_id(c);
        if (id == 0 || id > QKV_CLIENT_ID_MAX) {
            fprintf(stderr, "\n  client_id %llu\n", (unsigned long long)id);
            CU_FAIL("random client_id out of range");
        }
        qkv_client_destroy(&c);
    }
    /* Options */
    char err[256] = "";
    qkv_client_options_t options = {.client_id = QKV_CLIENT_ID_MAX + 1};
    CU_ASSERT(qkv_client_new(dead, &options, err, sizeof err) == NULL);
    CU_ASSERT(strstr(err, "client_id") != NULL);
    options = (qkv_client_options_t){.first_seq = QKV_CLIENT_ID_MAX + 1};
    CU_ASSERT(qkv_client_new(dead, &options, err, sizeof err) == NULL);
    CU_ASSERT(strstr(err, "first_seq") != NULL);
    options =
        (qkv_client_options_t){.client_id = QKV_CLIENT_ID_MAX, .first_seq = 7};
    qkv_client_t *c = ckit_client(dead, &options);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(qkv_client_id(c) == QKV_CLIENT_ID_MAX);
    CU_ASSERT_EQUAL(qkv_client_next_seq(c), 7);
    /* qkv_client_set_next_seq */
    CU_ASSERT_EQUAL(qkv_client_set_next_seq(c, 0), QKV_EINVAL);
    CU_ASSERT_EQUAL(qkv_client_set_next_seq(c, QKV_CLIENT_ID_MAX + 1),
                    QKV_EINVAL);
    CU_ASSERT_EQUAL(qkv_client_next_seq(c), 7);
    CU_ASSERT_EQUAL(qkv_client_set_next_seq(c, QKV_CLIENT_ID_MAX), 0);
    CU_ASSERT(qkv_client_next_seq(c) == QKV_CLIENT_ID_MAX);
    qkv_client_destroy(&c);

    /* The last seq is used, the one after it is refused here */
    s_fake_state_t st = {.item = "x"};
    ckit_fake_t *fake = ckit_fake_new(s_fake_answer, &st);
    CU_ASSERT_FATAL(fake != NULL);
    options = (qkv_client_options_t){.timeout_ms = 5000,
                                     .first_seq = QKV_CLIENT_ID_MAX};
    c = ckit_client(ckit_fake_endpoint(fake), &options);
    CU_ASSERT_FATAL(c != NULL);
    qkv_result_t r;
    CU_ASSERT_EQUAL(qkv_put(c, "k", 1, "v", 1, &r), 0);
    CU_ASSERT(r.index == QKV_CLIENT_ID_MAX); /* the fake echoes the seq */
    CU_ASSERT_EQUAL(qkv_put(c, "k", 1, "v", 1, NULL), QKV_EINVAL);
    CU_ASSERT_EQUAL(qkv_submit_put(c, "k", 1, "v", 1, NULL, NULL), QKV_EINVAL);
    CU_ASSERT_EQUAL(qkv_outstanding(c), 0);
    CU_ASSERT_EQUAL(atomic_load(&st.puts), 1);
    /* reads go on */
    qkv_health_t h;
    CU_ASSERT_EQUAL(qkv_health(c, &h), 0);
    qkv_health_clear(&h);
    qkv_client_destroy(&c);
    ckit_fake_destroy(&fake);
}

/*  ---------------------------------------------------------------------
    Reset (last: it empties the cluster) */

static void test_reset(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    qkv_result_t r;
    CU_ASSERT_EQUAL_FATAL(qkv_reset(c, &r), 0);
    CU_ASSERT(r.index > 0);
    for (size_t i = 0; i < NODES; i++) {
        ckit_snapshot_t snap;
        CU_ASSERT_EQUAL_FATAL(ckit_snapshot(s_ep[i], r.index, &snap), 0);
        CU_ASSERT_EQUAL(snap.count, 0);
        ckit_snapshot_free(&snap);
    }
    char key[64];
    key_of(key, sizeof key, "pg");
    CU_ASSERT_EQUAL(qkv_get(c, key, strlen(key), 0, NULL), QKV_ENOTFOUND);
    qkv_client_destroy(&c);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_put_get),
                                       KIT_TEST(test_delete_restarts_seq),
                                       KIT_TEST(test_health),
                                       KIT_TEST(test_not_leader_redirect),
                                       KIT_TEST(test_min_index_on_followers),
                                       KIT_TEST(test_pipelined_10000),
                                       KIT_TEST(test_pipelined_mixed),
                                       KIT_TEST(test_idempotent_retry),
                                       KIT_TEST(test_conflict_and_expired),
                                       KIT_TEST(test_stalled_leader_retries),
                                       KIT_TEST(test_timeouts_and_arguments),
                                       KIT_TEST(test_value_too_large_for_node),
                                       KIT_TEST(test_node_frame_rules),
                                       KIT_TEST(test_node_takes_bin),
                                       KIT_TEST(test_metrics_count_zmq_writes),
                                       KIT_TEST(test_oversize_frame_counted),
                                       KIT_TEST(test_fallback_endpoint),
                                       KIT_TEST(test_fake_conflict_and_expired),
                                       KIT_TEST(test_fake_retries),
                                       KIT_TEST(test_fake_health_limits),
                                       KIT_TEST(test_dump_cursor_failover),
                                       KIT_TEST(test_client_id_range),
                                       KIT_TEST(test_reset),
                                       KIT_TESTS_END};
    return kit_add_suite("libqkv", s_init, s_cleanup, tests) ? 0 : -1;
}

int main(void) {
    kit_node_bin(); /* skips (77) when there is no node to start */
    return kit_run(s_add_suites);
}
