/*
 * libFuzzer target for the agent's parser of the server's job request
 * (agent/job.c, job_request_parse: docs/agent-protocol.md §6), bytes the
 * agent receives from the server. Checks: a parsed request has a
 * non-empty command of at most JOB_COMMAND_MAX bytes, a cwd that is empty
 * or absolute, a timeout of 1-86400; then the rule check runs on it with
 * the defaults (commands off: always refused) and with commands on (a
 * command holding a shell metacharacter is never allowed without an
 * allow rule).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/job.h"
#include "common/err.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_agent_job: invariant failed: %s (%d)\n",     \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct job_request q;
    struct job_rules r;
    char why[256];
    size_t n;

    if (job_request_parse((const char *)data, size, &q, why, sizeof(why)) !=
        ERR_OK) {
        FUZZ_CHECK(why[0] != '\0');
        return 0;
    }
    n = strlen(q.command);
    if (q.is_push) {
        /* a push runs nothing; its path is clean, its mode safe */
        FUZZ_CHECK(n == 0 && q.script[0] == '\0' && q.fetch[0] == '\0');
        FUZZ_CHECK(
            util_path_clean(q.push.path, strlen(q.push.path), JOB_CWD_MAX));
        FUZZ_CHECK(q.push.mode >= 0 && q.push.mode <= 01777);
        FUZZ_CHECK(strlen(q.push.sha256) == 64);
        job_rules_init(&r);
        FUZZ_CHECK(!job_check(&r, &q, 1000, why, sizeof(why)));
        FUZZ_CHECK(job_push_dir_add(&r, "/srv/in", why, sizeof(why)) == ERR_OK);
        if (job_check(&r, &q, 1000, why, sizeof(why))) {
            FUZZ_CHECK(strncmp(q.push.path, "/srv/in/", 8) == 0);
        }
        job_rules_free(&r);
        return 0;
    }
    if (q.fetch[0] != '\0') {
        /* a fetch runs nothing and asks for nothing else */
        FUZZ_CHECK(n == 0 && q.script[0] == '\0' && q.interpreter[0] == '\0');
        FUZZ_CHECK(strspn(q.fetch,
                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
                          "OPQRSTUVWXYZ0123456789-") == strlen(q.fetch));
        return 0;
    }
    FUZZ_CHECK(q.id[0] == '\0' ||
               strspn(q.id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                            "TUVWXYZ0123456789-") == strlen(q.id));
    /* a command or a script (interpreter and body), never both */
    FUZZ_CHECK((n > 0 && n <= JOB_COMMAND_MAX) != (q.script[0] != '\0'));
    FUZZ_CHECK((q.interpreter[0] != '\0') == (q.script[0] != '\0'));
    FUZZ_CHECK(q.cwd[0] == '\0' || q.cwd[0] == '/');
    FUZZ_CHECK(q.timeout >= 1 && q.timeout <= 86400);
    job_rules_init(&r);
    FUZZ_CHECK(!job_check(&r, &q, 1000, why, sizeof(why)));
    r.enabled = true;
    r.timeout_max = 86400;
    if (job_check(&r, &q, 1000, why, sizeof(why))) {
        FUZZ_CHECK(n > 0 && strpbrk(q.command, JOB_METACHARS) == NULL);
    }
    FUZZ_CHECK(!job_check(&r, &q, 0, why, sizeof(why)));
    /* scripts: only with scripts_enabled; every line meets the rules */
    r.scripts_enabled = true;
    FUZZ_CHECK(job_rules_add(&r, true, "^rm", why, sizeof(why)) == ERR_OK);
    FUZZ_CHECK(job_rules_add(&r, false, "echo [a-z]*", why, sizeof(why)) ==
               ERR_OK);
    if (q.script[0] != '\0' && job_check(&r, &q, 1000, why, sizeof(why))) {
        FUZZ_CHECK(job_interp_path(&r, q.interpreter) != NULL);
        for (const char *p = q.script; *p != '\0';) {
            FUZZ_CHECK(strncmp(p, "rm", 2) != 0);
            p = strchr(p, '\n');
            p = p != NULL ? p + 1 : "";
        }
    }
    job_rules_free(&r);
    return 0;
}
