/* Unit tests for fdquota: each user but root holds at most a quarter of
 * the descriptor limit; the one at its cap is refused, nobody else. */
#include "config.h"

#include "check.h"
#include "fuse/fdquota.h"

#include <errno.h>
#include <sys/resource.h>

static void test_cap(void)
{
    fdquota_init(400);
    CHECK_INT(fdquota_cap(), 100);
    for (int i = 0; i < 100; i++)
        CHECK_INT(fdquota_take(65534), 0);
    CHECK_INT(fdquota_take(65534), -EMFILE);
    CHECK_INT(fdquota_take(65534), -EMFILE);
    /* Others are not affected; root has no cap. */
    CHECK_INT(fdquota_take(1000), 0);
    for (int i = 0; i < 500; i++)
        CHECK_INT(fdquota_take(0), 0);
    /* A close makes room again. */
    fdquota_put(65534);
    CHECK_INT(fdquota_take(65534), 0);
    CHECK_INT(fdquota_take(65534), -EMFILE);
    for (int i = 0; i < 100; i++)
        fdquota_put(65534);
    fdquota_put(1000);
    CHECK_INT(fdquota_take(65534), 0);
    fdquota_put(65534);
}

/* Users together stop at half the limit: root keeps the rest. */
static void test_total_cap(void)
{
    fdquota_init(16); /* 4 each, 8 together */
    for (uid_t u = 1001; u <= 1002; u++)
        for (int i = 0; i < 4; i++)
            CHECK_INT(fdquota_take(u), 0);
    CHECK_INT(fdquota_take(1003), -EMFILE);
    CHECK_INT(fdquota_take(0), 0);
    fdquota_put(1001);
    CHECK_INT(fdquota_take(1003), 0);
    fdquota_put(1003);
    for (int i = 0; i < 3; i++)
        fdquota_put(1001);
    for (int i = 0; i < 4; i++)
        fdquota_put(1002);
}

static void test_setup_raises_soft_limit(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_max > 64) {
        struct rlimit low = { 64, rl.rlim_max };
        CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    }
    char msg[256] = "";
    long limit = fdquota_setup(msg, sizeof(msg));
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHECK(rl.rlim_cur == rl.rlim_max);
    CHECK_INT(limit, (long)rl.rlim_max);
    CHECK_INT(fdquota_cap(), (long)rl.rlim_max / 4);
}

int main(void)
{
    test_cap();
    test_total_cap();
    test_setup_raises_soft_limit();
    CHECK_DONE();
}
