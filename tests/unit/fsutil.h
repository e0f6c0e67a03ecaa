/* File helpers for the unit tests, in C rather than through a shell:
 * on a small machine every process costs (a fork's page faults, a
 * shell, the command), and the crash loops check a store at every crash
 * point. Each does what the command named beside it does, for what the
 * tests use it for:
 *   fs_rm_rf      rm -rf            fs_copy_tree  cp -a (files, dirs, symlinks;
 *   fs_read       cat                              modes and times; sparse)
 *   fs_mkdir_p    mkdir -p
 *   fs_same       cmp -s            fs_list       ls -A | sort
 *   fs_grep       grep -q (see its  fs_subst      sed -i 's|from|to|g' (literal)
 *                 pattern language) fs_spawn      a program with arguments, no shell
 * A helper that fails says why on stderr (the path and errno), so a
 * CHECK around it has a meaningful message. The programs that stay
 * (qemu-img, qemu-io, xmllint) are the tests' oracles; fs_spawn runs
 * them without a shell. */
#ifndef VMSTOREFS_TEST_FSUTIL_H
#define VMSTOREFS_TEST_FSUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int fs_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    /* remove(3): rmdir for a directory (FTW_DP: its contents are gone),
     * unlink for anything else. */
    if (remove(path) < 0 && errno != ENOENT) {
        fprintf(stderr, "rm -rf: %s: %s\n", path, strerror(errno));
        return -1;
    }
    (void)flag;
    return 0;
}

/* rm -rf path: 0, or -1 (said on stderr). A missing path is fine. */
static inline int fs_rm_rf(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) < 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, fs_rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

/* mkdir -p path: 0, or -1 (said on stderr). */
static inline int fs_mkdir_p(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s", path);
    for (char *c = p + 1;; c++) {
        if (*c == '/' || *c == '\0') {
            char was = *c;
            *c = '\0';
            if (mkdir(p, 0777) < 0 && errno != EEXIST) {
                fprintf(stderr, "mkdir -p %s: %s\n", p, strerror(errno));
                return -1;
            }
            *c = was;
            if (!was)
                return 0;
        }
    }
}

/* A regular file's bytes, holes kept holes (as cp's --sparse=auto). */
static int fs_copy_data(int in, int out, off_t size)
{
    off_t at = 0;
    while (at < size) {
        off_t data = lseek(in, at, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) /* only a hole is left */
                break;
            return -1;
        }
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0)
            return -1;
        for (off_t from = data; from < hole;) {
            off_t to = from;
            ssize_t n = copy_file_range(in, &from, out, &to, (size_t)(hole - from), 0);
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
                /* No copy_file_range here: through a buffer. */
                char buf[65536];
                size_t want = (size_t)(hole - from) < sizeof(buf) ? (size_t)(hole - from) : sizeof(buf);
                n = pread(in, buf, want, from);
                if (n > 0 && pwrite(out, buf, (size_t)n, from) != n)
                    return -1;
                if (n > 0)
                    from += n;
            }
            if (n <= 0)
                return n == 0 ? (errno = EIO, -1) : -1;
        }
        at = hole;
    }
    return ftruncate(out, size);
}

/* One file, directory entry or symlink of cp -a; a directory's times are
 * set by the caller once its contents are in (they change them). */
static int fs_copy_times(const char *dst, const struct stat *sb)
{
    struct timespec t[2] = { sb->st_atim, sb->st_mtim };
    return utimensat(AT_FDCWD, dst, t, AT_SYMLINK_NOFOLLOW);
}

static inline int fs_copy_file(const char *src, const char *dst)
{
    struct stat sb;
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, r = -1;
    if (in >= 0 && fstat(in, &sb) == 0)
        out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, sb.st_mode & 07777);
    if (out >= 0 && fs_copy_data(in, out, sb.st_size) == 0 && fchmod(out, sb.st_mode & 07777) == 0)
        r = 0;
    if (r < 0)
        fprintf(stderr, "cp %s %s: %s\n", src, dst, strerror(errno));
    if (out >= 0)
        close(out);
    if (in >= 0)
        close(in);
    return r == 0 ? fs_copy_times(dst, &sb) : -1;
}

/* cp -a src dst (dst must not exist): 0, or -1 (said on stderr). */
static inline int fs_copy_tree(const char *src, const char *dst)
{
    struct stat sb;
    if (lstat(src, &sb) < 0) {
        fprintf(stderr, "cp -a: %s: %s\n", src, strerror(errno));
        return -1;
    }
    if (S_ISREG(sb.st_mode))
        return fs_copy_file(src, dst);
    if (S_ISLNK(sb.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof(target) - 1);
        if (n < 0 || (target[n] = '\0', symlink(target, dst) < 0)) {
            fprintf(stderr, "cp -a: %s: %s\n", src, strerror(errno));
            return -1;
        }
        return fs_copy_times(dst, &sb);
    }
    if (!S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "cp -a: %s: not a file, directory or symlink\n", src);
        return -1;
    }
    DIR *d = opendir(src);
    if (!d || mkdir(dst, 0700) < 0) {
        fprintf(stderr, "cp -a: %s: %s\n", d ? dst : src, strerror(errno));
        if (d)
            closedir(d);
        return -1;
    }
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char s[PATH_MAX], t[PATH_MAX];
        if (snprintf(s, sizeof(s), "%s/%s", src, e->d_name) >= (int)sizeof(s) ||
            snprintf(t, sizeof(t), "%s/%s", dst, e->d_name) >= (int)sizeof(t)) {
            fprintf(stderr, "cp -a: %s/%s: name too long\n", src, e->d_name);
            r = -1;
        } else {
            r = fs_copy_tree(s, t);
        }
    }
    closedir(d);
    if (r == 0 && (chmod(dst, sb.st_mode & 07777) < 0 || fs_copy_times(dst, &sb) < 0)) {
        fprintf(stderr, "cp -a: %s: %s\n", dst, strerror(errno));
        r = -1;
    }
    return r;
}

static int fs_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The n names (malloc'd, freed here) sorted, one a line, into out: its
 * length, or -1 when out is too small. */
static inline long fs_join_sorted(char **names, size_t n, char *out, size_t outsz)
{
    qsort(names, n, sizeof(names[0]), fs_cmp_names);
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (at < outsz)
            at += (size_t)snprintf(out + at, outsz - at, "%s\n", names[i]);
        free(names[i]);
    }
    return at < outsz ? (long)at : -1;
}

/* Does path name a file ending in suffix (an nftw callback's test)? */
static inline bool fs_file_of(const char *path, int flag, const char *suffix)
{
    size_t n = strlen(path), sl = strlen(suffix);
    return flag == FTW_F && n >= sl && strcmp(path + n - sl, suffix) == 0;
}

/* ls -A dir, sorted, one name a line ("" when empty) into out: the
 * number of names, or -1 (dir unreadable, said; or out too small). */
static inline int fs_list(const char *dir, char *out, size_t outsz)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "ls %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char *names[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            names[n++] = strdup(e->d_name);
    closedir(d);
    return fs_join_sorted(names, (size_t)n, out, outsz) < 0 ? -1 : n;
}

/* [ -z "$(ls -A dir)" ], said when not: true when dir exists and is empty. */
static inline bool fs_empty_dir(const char *dir)
{
    char names[4096];
    int n = fs_list(dir, names, sizeof(names));
    if (n > 0)
        fprintf(stderr, "%s is not empty: %.*s\n", dir, (int)strcspn(names, "\n"), names);
    return n == 0;
}

/* The file's bytes (NUL-terminated, *len without it), malloc'd; NULL
 * (said on stderr, unless quiet and it does not exist) when unreadable. */
static inline char *fs_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad || !buf) {
        free(buf);
        fprintf(stderr, "%s: read error\n", path);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* cmp -s a b: the same bytes (both readable). */
static inline bool fs_same(const char *a, const char *b)
{
    size_t la, lb;
    char *x = fs_read(a, &la), *y = fs_read(b, &lb);
    bool same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/* Does pattern match at s? A small subset of grep's basic regular
 * expressions, which is all the tests' patterns use: '.' any character
 * but a newline, '\' quotes the next character, '^' at the start
 * anchors at a line's start; anything else is itself. */
static bool fs_match_here(const char *pat, const char *s)
{
    for (; *pat; pat++, s++) {
        if (*s == '\0' || *s == '\n')
            return false;
        if (*pat == '\\' && pat[1])
            pat++;
        else if (*pat == '.')
            continue;
        if (*pat != *s)
            return false;
    }
    return true;
}

static bool fs_match(const char *pat, const char *text)
{
    bool bol = pat[0] == '^';
    if (bol)
        pat++;
    for (const char *s = text; *s; s++)
        if ((!bol || s == text || s[-1] == '\n') && fs_match_here(pat, s))
            return true;
    return false;
}

/* grep -q pattern path (fs_match's patterns): 1 a line matches, 0 none,
 * -1 unreadable (said), as grep's 0, 1 and 2. */
static inline int fs_grep(const char *path, const char *pattern)
{
    char *text = fs_read(path, NULL);
    if (!text)
        return -1;
    bool hit = fs_match(pattern, text);
    free(text);
    return hit ? 1 : 0;
}

/* sed -i 's|from|to|g' path, from a literal string (the file rewritten
 * in place): the number of replacements, or -1 (said). */
static inline int fs_subst(const char *path, const char *from, const char *to)
{
    size_t len, fl = strlen(from), tl = strlen(to);
    char *text = fs_read(path, &len);
    if (!text || fl == 0) {
        free(text);
        return -1;
    }
    int count = 0;
    for (const char *p = text; (p = strstr(p, from)); p += fl)
        count++;
    FILE *f = count ? fopen(path, "wb") : NULL;
    if (count && !f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        free(text);
        return -1;
    }
    for (const char *p = text, *hit; count && p; p = hit ? hit + fl : NULL) {
        hit = strstr(p, from);
        fwrite(p, 1, hit ? (size_t)(hit - p) : strlen(p), f);
        if (hit)
            fwrite(to, 1, tl, f);
    }
    free(text);
    if (f && fclose(f) != 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    return count;
}

/* name's path in $PATH (name itself when it has a '/' or is not found),
 * looked up once a program: posix_spawnp would try every directory
 * before it on every run. */
static const char *fs_which(const char *name)
{
    static struct {
        char name[64], path[PATH_MAX];
    } seen[16];
    static size_t n;
    if (strchr(name, '/') || strlen(name) >= sizeof(seen[0].name))
        return name;
    for (size_t i = 0; i < n; i++)
        if (strcmp(seen[i].name, name) == 0)
            return seen[i].path;
    const char *path = getenv("PATH");
    char found[PATH_MAX] = "";
    for (const char *d = path ? path : "/usr/bin:/bin"; *d && !found[0];) {
        size_t len = strcspn(d, ":");
        snprintf(found, sizeof(found), "%.*s/%s", (int)len, len ? d : ".", name);
        if (access(found, X_OK) != 0)
            found[0] = '\0';
        d += len + (d[len] == ':');
    }
    if (!found[0])
        return name;
    if (n == sizeof(seen) / sizeof(seen[0]))
        n = 0; /* forget the oldest: a lookup again, no harm */
    snprintf(seen[n].name, sizeof(seen[n].name), "%s", name);
    snprintf(seen[n].path, sizeof(seen[n].path), "%s", found);
    return seen[n++].path;
}

/* Runs argv (argv[0] looked up in PATH) in cwd (NULL: here) with no
 * shell. Its stdout goes into out (NUL-terminated; truncated output
 * makes it fail) when out is given, else to /dev/null; its stderr to
 * ours unless quiet, into out too when merged (2>&1). Returns its exit
 * status, -1 when it could not run or was killed (said on stderr). */
static int fs_spawn_ex(char *const argv[], const char *cwd, char *out, size_t outsz, bool quiet,
                       bool merged)
{
    int p[2] = { -1, -1 };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out) {
        if (pipe2(p, O_CLOEXEC) < 0)
            return -1;
        posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    } else {
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    }
    if (out && merged)
        posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO);
    else if (quiet)
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    if (cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    fflush(stderr);
    pid_t pid;
    int e = posix_spawn(&pid, fs_which(argv[0]), &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (out)
        close(p[1]);
    if (e != 0) {
        fprintf(stderr, "%s: cannot run: %s\n", argv[0], strerror(e));
        if (out)
            close(p[0]);
        return -1;
    }
    size_t n = 0;
    bool full = false;
    if (out) {
        ssize_t got;
        char sink[4096];
        while ((got = read(p[0], n + 1 < outsz ? out + n : sink,
                           n + 1 < outsz ? outsz - 1 - n : sizeof(sink))) > 0 ||
               (got < 0 && errno == EINTR)) {
            if (got < 0)
                continue;
            if (n + 1 < outsz)
                n += (size_t)got;
            else
                full = true;
        }
        out[n] = '\0';
        close(p[0]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (!WIFEXITED(status)) {
        fprintf(stderr, "%s: killed by signal %d\n", argv[0], WTERMSIG(status));
        return -1;
    }
    if (full) {
        fprintf(stderr, "%s: more output than %zu bytes\n", argv[0], outsz);
        return -1;
    }
    return WEXITSTATUS(status);
}

static inline int fs_spawn(char *const argv[], const char *cwd, char *out, size_t outsz, bool quiet)
{
    return fs_spawn_ex(argv, cwd, out, outsz, quiet, false);
}

/* argv's stdout and stderr into out (2>&1). */
static inline int fs_spawn_merged(char *const argv[], char *out, size_t outsz)
{
    return fs_spawn_ex(argv, NULL, out, outsz, false, true);
}

/* ---- The oracles (qemu-io, xmllint), without a shell ---- */

/* A batch of qemu-io reads, as tests/integration/lib.sh's read_patterns:
 * every image opened read-only in turn by one qemu-io ("open", its
 * reads, "close"). qio_read adds reads of an image; qio_ok runs them. */
struct qio {
    int argc;
    char *argv[512];
    char text[32768];
    size_t at;
    char cur[PATH_MAX];
    bool bad; /* more than fits, or a path qemu-io's command line cannot hold */
};

static inline void qio_init(struct qio *q)
{
    q->argc = 1;
    q->argv[0] = "qemu-io";
    q->at = 0;
    q->cur[0] = '\0';
    q->bad = false;
}

static void qio_arg(struct qio *q, const char *prefix, const char *a, size_t alen)
{
    int n = snprintf(q->text + q->at, sizeof(q->text) - q->at, "%s%.*s", prefix, (int)alen, a);
    if (n < 0 || q->at + (size_t)n >= sizeof(q->text) || q->argc + 3 > 512) {
        fprintf(stderr, "qemu-io: too many reads for one batch\n");
        q->bad = true;
        return;
    }
    q->argv[q->argc++] = "-c";
    q->argv[q->argc++] = q->text + q->at;
    q->at += (size_t)n + 1;
}

/* Reads of image: cmds are qemu-io commands separated by ';'
 * ("read -P 0x11 0 4M;read -P 0 4M 4M"). */
static inline void qio_read(struct qio *q, const char *image, const char *cmds)
{
    if (strcmp(q->cur, image) != 0) {
        if (q->cur[0])
            qio_arg(q, "", "close", 5);
        if (strpbrk(image, " \t\n'\"\\")) {
            fprintf(stderr, "qemu-io cannot open %s by a command\n", image);
            q->bad = true;
        }
        size_t len = strlen(image);
        if (len >= sizeof(q->cur)) {
            fprintf(stderr, "qemu-io: %s: name too long\n", image);
            q->bad = true;
            return;
        }
        memcpy(q->cur, image, len + 1);
        qio_arg(q, "open -r -o driver=qcow2 ", image, strlen(image));
    }
    for (const char *c = cmds; *c;) {
        size_t n = strcspn(c, ";");
        qio_arg(q, "", c, n);
        c += n + (c[n] == ';');
    }
}

/* Did qemu-io complain? (Its exit status says so too: both are asked.) */
static bool qio_complained(const char *out)
{
    static const char *const words[] = { "fail", "error", "could not", "can't", "no file" };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(out, words[i]))
            return true;
    return false;
}

/* What qemu-io said but its reads' reports: " line line...". */
static void qio_words(const char *out, char *buf, size_t bufsz)
{
    size_t at = 0;
    buf[0] = '\0';
    for (const char *l = out; *l && at + 1 < bufsz;) {
        size_t len = strcspn(l, "\n");
        if (strncmp(l, "read ", 5) != 0 && !memmem(l, len, "ops/sec", 7))
            at += (size_t)snprintf(buf + at, bufsz - at, " %.*s", (int)len, l);
        l += len + (l[len] == '\n');
    }
}

/* Runs the batch: true when every image opened and read as said. When
 * not, says which image did not (each run alone), with qemu-io's words. */
static inline bool qio_ok(struct qio *q)
{
    static char out[65536];
    char words[512];
    if (q->bad)
        return false;
    if (!q->cur[0])
        return true;
    qio_arg(q, "", "close", 5);
    q->argv[q->argc] = NULL;
    if (!q->bad && fs_spawn_merged(q->argv, out, sizeof(out)) == 0 && !qio_complained(out))
        return true;
    /* One image at a time, to say which. */
    for (int start = 1, i = 1; i < q->argc; i += 2) {
        if (strcmp(q->argv[i + 1], "close") != 0)
            continue;
        char *one[512] = { "qemu-io" };
        int n = 1;
        for (int k = start; k <= i + 1; k++)
            one[n++] = q->argv[k];
        one[n] = NULL;
        start = i + 2;
        if (fs_spawn_merged(one, out, sizeof(out)) != 0 || qio_complained(out)) {
            qio_words(out, words, sizeof(words));
            fprintf(stderr, "qemu-io: %s, reads from \"%s\" on:%s\n",
                    one[2] + strlen("open -r -o driver=qcow2 "), n > 4 ? one[4] : "", words);
            return false;
        }
    }
    qio_words(out, words, sizeof(words));
    fprintf(stderr, "qemu-io: the reads read as expected one by one, not in one qemu-io:%s\n",
            words);
    return false;
}

/* One image's reads, one qemu-io. */
static inline bool qio_reads(const char *image, const char *cmds)
{
    struct qio q;
    qio_init(&q);
    qio_read(&q, image, cmds);
    return qio_ok(&q);
}

/* qemu-io -f qcow2 -c cmd image (a write), said when it fails. */
static inline bool qio_do(const char *image, const char *cmd)
{
    char *argv[] = { "qemu-io", "-f", "qcow2", "-c", (char *)cmd, (char *)image, NULL };
    static char out[4096];
    if (fs_spawn_merged(argv, out, sizeof(out)) == 0 && !qio_complained(out))
        return true;
    fprintf(stderr, "qemu-io -c '%s' %s: %s\n", cmd, image, out);
    return false;
}

/* Libvirt's RelaxNG schemas, where virt-xml-validate finds them (its
 * SCHEMA="<dir>/${TYPE}.rng" line): the directory, or NULL (said). */
static inline const char *xml_schema_dir(void)
{
    static char rng[PATH_MAX];
    if (rng[0])
        return rng;
    const char *where = fs_which("virt-xml-validate");
    if (!strchr(where, '/')) {
        fprintf(stderr, "virt-xml-validate not found\n");
        return NULL;
    }
    char *text = fs_read(where, NULL);
    const char *key = "\nSCHEMA=\"";
    char *at = text ? strstr(text, key) : NULL;
    char *end = at ? strstr(at, "/${TYPE}.rng\"") : NULL;
    if (at && end && at[strlen(key)] == '/' && !memchr(at + 1, '\n', (size_t)(end - at - 1)))
        snprintf(rng, sizeof(rng), "%.*s", (int)(end - at - strlen(key)), at + strlen(key));
    else
        fprintf(stderr, "%s: no SCHEMA=\"/dir/${TYPE}.rng\" line\n", where);
    free(text);
    return rng[0] ? rng : NULL;
}

/* Contents xmllint has found valid by a schema: the same bytes by the
 * same schema are valid again (kept whole, not as a sum: they are few
 * and small). */
static struct xml_valid {
    char *schema, *text;
    size_t len;
} *xml_seen;
static size_t xml_nseen;

static bool xml_known(const char *schema, const char *text, size_t len)
{
    for (size_t i = 0; i < xml_nseen; i++)
        if (xml_seen[i].len == len && strcmp(xml_seen[i].schema, schema) == 0 &&
            memcmp(xml_seen[i].text, text, len) == 0)
            return true;
    return false;
}

/* virt-xml-validate FILE TYPE for each of the n files, by one xmllint
 * (what virt-xml-validate runs, with TYPE's schema); a file whose bytes
 * were found valid before is not asked again. True when all are valid;
 * else xmllint says why. */
static inline bool xml_valid(const char *type, char *const files[], size_t n)
{
    const char *rng = xml_schema_dir();
    if (!rng)
        return false;
    char schema[PATH_MAX + 64];
    snprintf(schema, sizeof(schema), "%s/%s.rng", rng, type);
    char **argv = calloc(n + 5, sizeof(char *));
    char **texts = calloc(n + 1, sizeof(char *));
    size_t *lens = calloc(n + 1, sizeof(size_t));
    int argc = 0;
    bool ok = argv && texts && lens;
    if (ok) {
        argv[argc++] = "xmllint";
        argv[argc++] = "--noout";
        argv[argc++] = "--relaxng";
        argv[argc++] = schema;
    }
    for (size_t i = 0; ok && i < n; i++) {
        texts[i] = fs_read(files[i], &lens[i]);
        if (!texts[i])
            ok = false;
        else if (!xml_known(schema, texts[i], lens[i]))
            argv[argc++] = files[i];
    }
    if (ok && argc > 4) {
        /* xmllint says "FILE validates" on stderr for each good one. */
        ok = fs_spawn(argv, NULL, NULL, 0, true) == 0;
        if (!ok)
            fs_spawn(argv, NULL, NULL, 0, false); /* again, to say why */
    }
    for (size_t i = 0; i < n && texts; i++) {
        if (ok && texts[i] && !xml_known(schema, texts[i], lens[i])) {
            struct xml_valid *more = realloc(xml_seen, (xml_nseen + 1) * sizeof(*xml_seen));
            if (more) {
                xml_seen = more;
                xml_seen[xml_nseen++] = (struct xml_valid){ strdup(schema), texts[i], lens[i] };
                continue;
            }
        }
        free(texts[i]);
    }
    free(argv);
    free(texts);
    free(lens);
    return ok;
}

#endif
