/*  kit_linear.c - a linearizability checker for key-value histories
    (kit.h, "Histories"), test-only.

    Wing and Gong's search with Lowe's cache of visited configurations, as
    the porcupine checker does it, on one key at a time (a key-value store
    is linearizable when every key, a register, is: P-compositionality).
    The operations of a key become call and return events in time order in
    one doubly linked list. The search walks the list: at a call it tries
    to linearize that operation now (the register's model says whether it
    may and what the value becomes), lifting its call and return out of the
    list; at a return whose operation is not linearized yet it has gone
    too far and backtracks to the last choice. A configuration (the set of
    linearized operations and the value) seen before is not tried again.
    An operation whose outcome is unknown returns at the end of time: it
    may take effect anywhere after its call, or never before the end
    (where nothing observes it).
*/
#include "kit.h"

#include <stdlib.h>
#include <string.h>

typedef struct s_event {
    size_t op;             /* index into the key's operations */
    bool call;             /* call, else return */
    struct s_event *match; /* the other event of the operation */
    struct s_event *prev, *next;
} s_event_t;

typedef struct {
    uint64_t *bits; /* linearized operations */
    int state;      /* the register's value: an operation index that wrote
                       it, or -1 absent */
} s_config_t;

typedef struct {
    s_config_t *slots;
    size_t cap, count, words;
} s_cache_t;

static uint64_t s_hash(const uint64_t *bits, size_t words, int state) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(int64_t)state;
    for (size_t i = 0; i < words; i++) {
        h ^= bits[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

static int s_cache_grow(s_cache_t *c) {
    size_t cap = c->cap ? c->cap * 2 : 1024;
    s_config_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < c->cap; i++) {
        s_config_t *s = &c->slots[i];
        if (!s->bits)
            continue;
        size_t at = s_hash(s->bits, c->words, s->state) & (cap - 1);
        while (slots[at].bits)
            at = (at + 1) & (cap - 1);
        slots[at] = *s;
    }
    free(c->slots);
    c->slots = slots;
    c->cap = cap;
    return 0;
}

/* Adds (bits, state); false when it was there already (or out of
   memory: the search then explores it again, which is only slower). */
static bool s_cache_add(s_cache_t *c, const uint64_t *bits, int state) {
    if ((c->count + 1) * 2 > c->cap && s_cache_grow(c) != 0)
        return true;
    size_t at = s_hash(bits, c->words, state) & (c->cap - 1);
    for (; c->slots[at].bits; at = (at + 1) & (c->cap - 1))
        if (c->slots[at].state == state &&
            !memcmp(c->slots[at].bits, bits, c->words * 8))
            return false;
    uint64_t *copy = malloc(c->words * 8);
    if (!copy)
        return true;
    memcpy(copy, bits, c->words * 8);
    c->slots[at] = (s_config_t){copy, state};
    c->count++;
    return true;
}

static void s_cache_free(s_cache_t *c) {
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i].bits);
    free(c->slots);
}

/* The register's model: may op follow state, and the state after it. */
static bool s_step(const kit_op_t *ops, size_t op, int state, int *next) {
    const kit_op_t *o = &ops[op];
    if (o->write) {
        *next = (int)op;
        return true;
    }
    *next = state;
    if (!o->found)
        return state < 0;
    return state >= 0 && !strcmp(ops[state].value, o->value);
}

typedef struct {
    const kit_op_t *ops;
    s_event_t *ev;
} s_sort_ctx_t;

static s_sort_ctx_t s_ctx; /* qsort has no context argument */

static int64_t s_time(const s_event_t *e) {
    const kit_op_t *o = &s_ctx.ops[e->op];
    return e->call ? o->call_us : o->return_us;
}

static int s_by_time(const void *a, const void *b) {
    const s_event_t *x = *(s_event_t *const *)a, *y = *(s_event_t *const *)b;
    int64_t tx = s_time(x), ty = s_time(y);
    if (tx != ty)
        return tx < ty ? -1 : 1;
    /* at the same instant a call goes first: the operations overlap */
    if (x->call != y->call)
        return x->call ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

static void s_lift(s_event_t **head, s_event_t *call) {
    s_event_t *ret = call->match;
    if (call->prev)
        call->prev->next = call->next;
    else
        *head = call->next;
    if (call->next)
        call->next->prev = call->prev;
    if (ret->prev)
        ret->prev->next = ret->next;
    else
        *head = ret->next;
    if (ret->next)
        ret->next->prev = ret->prev;
}

static void s_unlift(s_event_t **head, s_event_t *call) {
    s_event_t *ret = call->match;
    if (ret->prev)
        ret->prev->next = ret;
    else
        *head = ret;
    if (ret->next)
        ret->next->prev = ret;
    if (call->prev)
        call->prev->next = call;
    else
        *head = call;
    if (call->next)
        call->next->prev = call;
}

/* The operations of one key: linearizable? -1 when out of memory. */
static int s_check_key(const kit_op_t *ops, const size_t *idx, size_t n) {
    kit_op_t *mine = calloc(n ? n : 1, sizeof(*mine));
    s_event_t *ev = calloc(2 * n + 1, sizeof(*ev));
    s_event_t **order = calloc(2 * n + 1, sizeof(*order));
    size_t words = (n + 63) / 64 + 1;
    uint64_t *bits = calloc(words, 8);
    s_event_t **stack = calloc(n + 1, sizeof(*stack));
    int *states = calloc(n + 1, sizeof(*states));
    s_cache_t cache = {NULL, 0, 0, words};
    int result = -1;
    if (!mine || !ev || !order || !bits || !stack || !states)
        goto done;
    for (size_t i = 0; i < n; i++)
        mine[i] = ops[idx[i]];
    for (size_t i = 0; i < n; i++) {
        ev[2 * i] = (s_event_t){i, true, &ev[2 * i + 1], NULL, NULL};
        ev[2 * i + 1] = (s_event_t){i, false, &ev[2 * i], NULL, NULL};
        order[2 * i] = &ev[2 * i];
        order[2 * i + 1] = &ev[2 * i + 1];
    }
    s_ctx = (s_sort_ctx_t){mine, ev};
    qsort(order, 2 * n, sizeof(*order), s_by_time);
    s_event_t *head = n ? order[0] : NULL;
    for (size_t i = 0; i < 2 * n; i++) {
        order[i]->prev = i ? order[i - 1] : NULL;
        order[i]->next = i + 1 < 2 * n ? order[i + 1] : NULL;
    }
    int state = -1;
    size_t depth = 0;
    s_event_t *e = head;
    result = 1;
    uint64_t steps = 0;
    while (head) {
        if (++steps > KIT_LINEAR_BUDGET) {
            result = -2; /* undecided: too many choices to try */
            break;
        }
        if (e->call) {
            int next;
            bool ok = s_step(mine, e->op, state, &next);
            if (ok) {
                bits[e->op / 64] |= 1ull << (e->op % 64);
                if (s_cache_add(&cache, bits, next)) {
                    stack[depth] = e;
                    states[depth++] = state;
                    state = next;
                    s_lift(&head, e);
                    e = head;
                    continue;
                }
                bits[e->op / 64] &= ~(1ull << (e->op % 64));
            }
            e = e->next;
        } else {
            if (depth == 0) {
                result = 0;
                break;
            }
            s_event_t *top = stack[--depth];
            state = states[depth];
            bits[top->op / 64] &= ~(1ull << (top->op % 64));
            s_unlift(&head, top);
            e = top->next;
        }
    }
done:
    s_cache_free(&cache);
    free(mine);
    free(ev);
    free(order);
    free(bits);
    free(stack);
    free(states);
    return result;
}

int kit_linearizable(const kit_op_t *ops, size_t count, const char **bad_key) {
    bool *done = calloc(count ? count : 1, sizeof(*done));
    size_t *idx = calloc(count ? count : 1, sizeof(*idx));
    int result = done && idx ? 1 : -1;
    for (size_t i = 0; result == 1 && i < count; i++) {
        if (done[i])
            continue;
        size_t n = 0;
        for (size_t j = i; j < count; j++)
            if (!done[j] && !strcmp(ops[j].key, ops[i].key)) {
                done[j] = true;
                idx[n++] = j;
            }
        result = s_check_key(ops, idx, n);
        if (result != 1 && bad_key)
            *bad_key = ops[i].key;
    }
    free(done);
    free(idx);
    return result;
}
