/* perm: see perm.h. */
#include "config.h"

#include "store/perm.h"
#include "store/storeio.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int perm_of(const struct store *s, const char *path, struct store_perm *out)
{
    struct stat st;
    int r = store_lstat(s, path, &st);
    if (r < 0)
        return r;
    out->uid = st.st_uid;
    out->gid = st.st_gid;
    out->mode = st.st_mode & 0777;
    return 0;
}

struct store_perm perm_private(mode_t mode)
{
    struct store_perm p = { .uid = geteuid(), .gid = getegid(), .mode = mode & 0777 };
    return p;
}

int perm_fd(int fd, const struct store_perm *p)
{
    if (fchown(fd, p->uid, p->gid) < 0 || fchmod(fd, p->mode & 0777) < 0)
        return -errno;
    return 0;
}

int perm_set(const struct store *s, const char *path, const struct store_perm *p)
{
    /* O_NONBLOCK: nothing planted at path (a FIFO) can hang the open. */
    int fd = store_open(s, path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return fd;
    int r = perm_fd(fd, p);
    close(fd);
    return r;
}

int perm_like(const struct store *s, const char *path, const char *like)
{
    struct store_perm p;
    int r = perm_of(s, like, &p);
    return r < 0 ? r : perm_set(s, path, &p);
}

bool perm_cred_may(const struct store *s, const struct store_cred *cred, const char *path,
                   int mode)
{
    if (cred->uid == 0)
        return true;
    const char *rel = storeio_rel(s, path);
    if (!rel)
        return false;
    if (!*rel)
        rel = ".";
    /* A daemon that is not root (a user's own mount) asks for itself
     * directly, and can ask for no one else: the child could not take
     * their ids, and says no. */
    if (cred->uid == geteuid())
        return faccessat(s->rootfd, rel, mode, AT_EACCESS | AT_SYMLINK_NOFOLLOW) == 0;
    /* In the child only system calls (the daemon has threads): raw ones,
     * so that each changes this process alone, and the ids last. From
     * the store's root descriptor, as a path through the mount resolves:
     * the root's own search permission is checked, nothing above it. */
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        if (syscall(SYS_setgroups, cred->ngroups, cred->groups) < 0 ||
            syscall(SYS_setresgid, cred->gid, cred->gid, cred->gid) < 0 ||
            syscall(SYS_setresuid, cred->uid, cred->uid, cred->uid) < 0)
            _exit(2);
        _exit(faccessat(s->rootfd, rel, mode, AT_EACCESS | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
