/*
 * The waiters of deferred answers (http_internal.h "Waiting for a
 * deferred answer"): one list, one count and one timer for every kind of
 * them (a new tunnel's answer, a command's job, a job followed on another
 * node, a pairing question, a request off the loop), which each kept a
 * copy of before. The waiter owns its struct http_waiter and frees
 * itself; this file only links and unlinks it, arms and disarms its
 * timer, and lets go of a whole list at the API's stop. Everything here
 * runs on the loop's thread.
 */
#include "http/http_internal.h"

void http_waiter_link(struct http_waiters *l, struct http_waiter *wr,
                      void *owner)
{
    wr->owner = owner;
    wr->list = l;
    wr->next = l->first;
    if (wr->next != NULL) {
        wr->next->pprev = &wr->next;
    }
    wr->pprev = &l->first;
    l->first = wr;
    l->n++;
}

void http_waiter_unlink(struct http_waiter *wr)
{
    if (wr->pprev != NULL) {
        *wr->pprev = wr->next;
        if (wr->next != NULL) {
            wr->next->pprev = wr->pprev;
        }
        wr->list->n--;
        wr->next = NULL;
        wr->pprev = NULL;
        wr->list = NULL;
    }
    http_waiter_disarm(wr);
}

static void http_waiter_fire(struct loop *l, void *arg)
{
    struct http_waiter *wr = arg;

    (void)l;
    wr->timer = 0; /* fired: nothing to take back */
    wr->due(wr->owner);
}

bool http_waiter_arm(struct http_waiter *wr, struct loop *loop, int64_t ms,
                     http_waiter_fn due)
{
    http_waiter_disarm(wr);
    wr->loop = loop;
    wr->due = due;
    wr->timer = loop_add_timer(loop, ms, http_waiter_fire, wr);
    return wr->timer != 0;
}

void http_waiter_disarm(struct http_waiter *wr)
{
    if (wr->timer != 0) {
        loop_del_timer(wr->loop, wr->timer);
        wr->timer = 0;
    }
}

void http_waiters_forget(struct http_waiters *l, http_waiter_fn each)
{
    struct http_waiter *wr;

    while ((wr = l->first) != NULL) {
        http_waiter_unlink(wr);
        if (each != NULL) {
            each(wr->owner);
        }
    }
}
