/* Unit tests for jobs: the registry behind `.jobs`. */
#include "config.h"

#include "check.h"
#include "util/jobs.h"

#include <stdlib.h>
#include <string.h>

/* Renders and compares with the expected text, length included. */
static void expect_render(int line, const char *want)
{
    size_t len = 12345;
    char *got = jobs_render(&len);
    if (!got) {
        fprintf(stderr, "line %d: jobs_render returned NULL\n", line);
        check_failures++;
        return;
    }
    if (strcmp(got, want) != 0 || len != strlen(want)) {
        fprintf(stderr, "line %d: jobs_render gave \"%s\" (len %zu), expected \"%s\"\n", line, got,
                len, want);
        check_failures++;
    }
    free(got);
}
#define EXPECT_RENDER(want) expect_render(__LINE__, want)

static void test_empty(void)
{
    EXPECT_RENDER("");
}

static void test_two_jobs(void)
{
    struct job *a = jobs_start("clone", "vm1", "vm2", 200);
    struct job *b = jobs_start("merge", "web-2", "s1/vda", 1000);
    CHECK(a != NULL);
    CHECK(b != NULL);
    EXPECT_RENDER("clone vm1 vm2 0/200 0%\nmerge web-2 s1/vda 0/1000 0%\n");

    jobs_progress(a, 50);
    jobs_progress(b, 999);
    EXPECT_RENDER("clone vm1 vm2 50/200 25%\nmerge web-2 s1/vda 999/1000 99%\n");

    jobs_finish(a);
    EXPECT_RENDER("merge web-2 s1/vda 999/1000 99%\n");

    jobs_progress(b, 1000);
    EXPECT_RENDER("merge web-2 s1/vda 1000/1000 100%\n");
    jobs_finish(b);
    EXPECT_RENDER("");
}

static void test_order_after_middle_finish(void)
{
    struct job *a = jobs_start("clone", "a", NULL, 10);
    struct job *b = jobs_start("clone", "b", NULL, 10);
    struct job *c = jobs_start("clone", "c", NULL, 10);
    jobs_finish(b);
    EXPECT_RENDER("clone a 0/10 0%\nclone c 0/10 0%\n");
    jobs_finish(c);
    jobs_finish(a);
    EXPECT_RENDER("");
}

static void test_zero_total(void)
{
    struct job *j = jobs_start("clone", "vm1", NULL, 0);
    EXPECT_RENDER("clone vm1 0/0 0%\n");
    jobs_progress(j, 7);
    EXPECT_RENDER("clone vm1 7/0 0%\n");
    jobs_finish(j);
    EXPECT_RENDER("");
}

static void test_long_names(void)
{
    /* a 64-byte VM name and large byte counts fit on one line */
    char vm[65];
    memset(vm, 'v', 64);
    vm[64] = '\0';
    struct job *j = jobs_start("clone", vm, NULL, 18000000000000000000ull);
    jobs_progress(j, 9000000000000000000ull); /* done * 100 overflows 64 bits */
    char want[256];
    snprintf(want, sizeof(want), "clone %s 9000000000000000000/18000000000000000000 50%%\n", vm);
    EXPECT_RENDER(want);
    jobs_finish(j);
}

static void test_null_job(void)
{
    /* jobs_start may fail (NULL); progress and finish accept that */
    jobs_progress(NULL, 1);
    jobs_finish(NULL);
    EXPECT_RENDER("");
}

/* Only the lines whose VM the reader may see, in order (.jobs shows
 * each user the VMs it may search). */
static bool not_secret(const char *vm, void *ctx)
{
    (*(int *)ctx)++;
    return strcmp(vm, "secret") != 0;
}

static void test_filtered(void)
{
    struct job *a = jobs_start("clone", "web1", "c1", 10);
    struct job *b = jobs_start("merge", "secret", "s1/vda", 10);
    struct job *c = jobs_start("clone", "db1", "c2", 10);
    int asked = 0;
    size_t len;
    char *got = jobs_render_for(not_secret, &asked, &len);
    CHECK(got != NULL);
    if (got) {
        CHECK_STR(got, "clone web1 c1 0/10 0%\nclone db1 c2 0/10 0%\n");
        CHECK_INT((int)len, (int)strlen(got));
    }
    CHECK_INT(asked, 3);
    free(got);
    jobs_finish(a);
    jobs_finish(b);
    jobs_finish(c);
    EXPECT_RENDER("");
}

int main(void)
{
    test_empty();
    test_two_jobs();
    test_order_after_middle_finish();
    test_zero_total();
    test_long_names();
    test_null_job();
    test_filtered();
    CHECK_DONE();
}
