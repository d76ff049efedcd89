// SPDX-License-Identifier: GPL-2.0-only
/* vexxy's runtime tracer. Everything is filtered to one sandbox by the
 * inode of its PID namespace, and aggregated in the kernel: a file, a
 * network address or a symbol is reported once, with counts, so a busy
 * server costs a map lookup per event rather than a trip to user space.
 *
 * Only x86_64 syscall numbers are wired in (see the NR_ constants). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "trace.h"

char LICENSE[] SEC("license") = "GPL";

#define NR_open 2
#define NR_mmap 9
#define NR_mprotect 10
#define NR_connect 42
#define NR_accept 43
#define NR_bind 49
#define NR_creat 85
#define NR_openat 257
#define NR_accept4 288
#define NR_openat2 437

#define PROT_EXEC_ 0x4
#define AF_UNIX_ 1
#define AF_INET_ 2
#define AF_INET6_ 10
#define EINPROGRESS_ 115
#define MAX_PID_LEVELS 8

/* The sandbox's PID-namespace inode; 0 = not armed, nothing is recorded. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ST_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u64);
} syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_UPROBES);
	__type(key, __u32);
	__type(value, __u64);
} symbol_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct file_key);
	__type(value, __u64);
} files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u64);
	__type(value, __u64);
} failed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct net_key);
	__type(value, __u64);
} net SEC(".maps");

struct pending {
	__u32 nr;
	__u32 flags;
	__u64 arg0;       /* filename / addr / sockaddr pointer */
	__u64 arg1;       /* fd for mmap, addrlen for connect/bind */
	struct net_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Per-CPU scratch for building one event: a ring-buffer record is `h`
 * followed by the first `h.len` bytes of `data`. */
struct scratch {
	struct event_header h;
	char data[PATH_BUF + NAME_BUF];
	struct pending p;
};

#define OFF(type, field) __builtin_offsetof(struct type, field)

/* For user space, in .rodata: the sizes and offsets the compiler gave the
 * records and keys of trace.h. The loader reads them through the Rust
 * types the skeleton generates from this object's BTF, and its tests
 * compare those types with these numbers. The enum-typed members put the
 * enums of trace.h in BTF (clang emits a type only when something uses
 * it), so the skeleton generates their constants too; each holds the
 * enum's last constant. */
struct wire_layout {
	__u32 event_header_size;
	__u32 event_header_type;
	__u32 event_header_len;
	__u32 event_header_pid;
	__u32 event_header_ns_pid;
	__u32 event_header_ns_ppid;
	__u32 event_header_code;
	__u32 event_header_a;
	__u32 event_header_b;
	__u32 event_header_c;
	__u32 event_header_d;
	__u32 event_header_comm;
	__u32 event_body;          /* where a record's body starts */
	__u32 file_key_size;
	__u32 file_key_dentry;
	__u32 file_key_ino;
	__u32 file_key_name_hash;
	__u32 file_key_kind;
	__u32 net_key_size;
	__u32 net_key_op;
	__u32 net_key_ok;
	__u32 net_key_family;
	__u32 net_key_port;
	__u32 net_key_pad;
	__u32 net_key_addr;
	enum event_kind event_kind;
	enum file_kind file_kind;
	enum stat_index stat_index;
	enum path_flag path_flag;
	enum net_op net_op;
};

const volatile struct wire_layout wire_layout = {
	.event_header_size = sizeof(struct event_header),
	.event_header_type = OFF(event_header, type),
	.event_header_len = OFF(event_header, len),
	.event_header_pid = OFF(event_header, pid),
	.event_header_ns_pid = OFF(event_header, ns_pid),
	.event_header_ns_ppid = OFF(event_header, ns_ppid),
	.event_header_code = OFF(event_header, code),
	.event_header_a = OFF(event_header, a),
	.event_header_b = OFF(event_header, b),
	.event_header_c = OFF(event_header, c),
	.event_header_d = OFF(event_header, d),
	.event_header_comm = OFF(event_header, comm),
	.event_body = OFF(scratch, data),
	.file_key_size = sizeof(struct file_key),
	.file_key_dentry = OFF(file_key, dentry),
	.file_key_ino = OFF(file_key, ino),
	.file_key_name_hash = OFF(file_key, name_hash),
	.file_key_kind = OFF(file_key, kind),
	.net_key_size = sizeof(struct net_key),
	.net_key_op = OFF(net_key, op),
	.net_key_ok = OFF(net_key, ok),
	.net_key_family = OFF(net_key, family),
	.net_key_port = OFF(net_key, port),
	.net_key_pad = OFF(net_key, pad),
	.net_key_addr = OFF(net_key, addr),
	.event_kind = EV_EXIT,
	.file_kind = KIND_EXEC_MAP,
	.stat_index = ST_COUNT,
	.path_flag = PATH_COMPLETE,
	.net_op = OP_ACCEPT,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch_map, &zero);
}

static __always_inline void bump(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* The level at which `task` belongs to the target namespace, or -1. */
static __always_inline int sandbox_level(struct task_struct *task)
{
	struct pid *p = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	if (level == 0)
		return -1; /* the host's own namespace: the fast path */
	__u32 zero = 0;
	__u32 *want = bpf_map_lookup_elem(&target, &zero);
	if (!want || *want == 0)
		return -1;
	for (int i = 1; i < MAX_PID_LEVELS; i++) {
		if (i > level)
			break;
		struct upid up = {};
		bpf_core_read(&up, sizeof(up), &p->numbers[i]);
		if (BPF_CORE_READ(up.ns, ns.inum) == *want)
			return i;
	}
	return -1;
}

/* Per-task cache of the filter's answer: computed once per task and
 * target, so a busy sandboxed server pays a task-storage lookup per
 * syscall instead of a namespace walk. `pending` says sys_enter left an
 * in-flight record for sys_exit, so other syscalls skip that map. */
struct task_state {
	__u32 target;
	__s32 level;
	__u32 pending;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_state);
} task_states SEC(".maps");

/* The current task's cached filter state when it is in the sandbox, else
 * NULL. Host tasks (PID-namespace level 0) take two plain loads. The
 * trusted task pointer stays in here: the global functions take plain
 * integers, so callers use bpf_get_current_task() for theirs. */
static __always_inline struct task_state *current_state(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	if (t->thread_pid->level == 0)
		return NULL;
	__u32 zero = 0;
	__u32 *want = bpf_map_lookup_elem(&target, &zero);
	if (!want || *want == 0)
		return NULL;
	struct task_state *st = bpf_task_storage_get(&task_states, t, 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		/* no storage (allocation failed): if the task is the sandbox's,
		 * this syscall goes unrecorded, and that is counted as a loss */
		if (sandbox_level(t) >= 0)
			bump(ST_NO_TASK_STATE);
		return NULL;
	}
	if (st->target != *want) {
		st->level = sandbox_level(t);
		st->pending = 0;
		st->target = *want;
	}
	return st->level < 0 ? NULL : st;
}

static __always_inline __u32 ns_tgid(struct task_struct *task, int level)
{
	struct pid *p = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int plevel = BPF_CORE_READ(p, level);
	if (level < 0 || level > plevel || level >= MAX_PID_LEVELS)
		return 0;
	struct upid up = {};
	bpf_core_read(&up, sizeof(up), &p->numbers[level & (MAX_PID_LEVELS - 1)]);
	return up.nr;
}

static __always_inline void fill_header(struct event_header *h, __u32 type,
					struct task_struct *task, int level)
{
	h->type = type;
	h->len = 0;
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->ns_pid = ns_tgid(task, level);
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	h->ns_ppid = sandbox_level(parent) == level ? ns_tgid(parent, level) : 0;
	h->code = 0;
	h->a = h->b = 0;
	h->c = h->d = 0;
	bpf_get_current_comm(&h->comm, sizeof(h->comm));
}


struct walk_ctx {
	struct dentry *d;
	struct vfsmount *vm;
	struct mount *m;
	struct dentry *root_d;
	struct vfsmount *root_m;
	__u32 off;
	__s32 flags;
};

/* One step of the walk; bpf_loop verifies it once, whatever the depth. */
static long walk_step(__u64 i, void *data)
{
	struct walk_ctx *c = data;
	/* locals, so CO-RE relocates only kernel types, never walk_ctx */
	struct dentry *d = c->d;
	struct vfsmount *vm = c->vm;
	struct mount *m = c->m;
	if (d == c->root_d && vm == c->root_m) {
		c->flags = PATH_COMPLETE;
		return 1;
	}
	struct dentry *mnt_root = BPF_CORE_READ(vm, mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (d == mnt_root || d == parent) {
		struct mount *mp = BPF_CORE_READ(m, mnt_parent);
		if (mp == m || !mp) {
			c->flags = PATH_COMPLETE;
			return 1;
		}
		c->d = BPF_CORE_READ(m, mnt_mountpoint);
		c->m = mp;
		c->vm = (void *)mp + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	__u32 off = c->off;
	if (off >= PATH_BUF)
		return 1;
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	long n = bpf_probe_read_kernel_str(&s->data[off & (PATH_BUF - 1)], NAME_BUF, name);
	if (n <= 0)
		return 1;
	c->off = off + n;
	c->d = parent;
	return 0;
}

/* Writes the components of a path, leaf first, each NUL-terminated, into
 * the scratch buffer and returns the byte count. The walk stops at `task`'s
 * root directory or at the root of the mount tree, crossing mount points. */
static __always_inline __u32 walk_path(struct scratch *s, struct task_struct *task,
				       struct dentry *d, struct vfsmount *vm, __s32 *flags)
{
	struct walk_ctx c = {
		.d = d,
		.vm = vm,
		.m = (void *)vm - bpf_core_field_offset(struct mount, mnt),
		.root_d = BPF_CORE_READ(task, fs, root.dentry),
		.root_m = BPF_CORE_READ(task, fs, root.mnt),
		.off = 0,
		.flags = PATH_TRUNCATED,
	};
	bpf_loop(MAX_COMPONENTS, walk_step, &c, 0);
	*flags = c.flags;
	return c.off > PATH_BUF ? PATH_BUF : c.off;
}

/* Counts one use of `f` (opened or mapped executable). On first sight the
 * path is resolved and sent to user space; if it cannot be sent the key is
 * not stored, so a later use tries again, and the loss is counted. */
/* A global (separately verified) function: the walk and its loop are
 * checked once, not once per call site. Pointers arrive as integers and
 * are only ever read through bpf_probe_read_kernel. */
__noinline int record_file(__u64 task_p, int level, __u64 file_p, __u32 kind)
{
	struct task_struct *task = (void *)task_p;
	struct file *f = (void *)file_p;
	if (!f)
		return 0;
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *vm = BPF_CORE_READ(f, f_path.mnt);
	struct file_key key = {
		.dentry = (__u64)d,
		.ino = BPF_CORE_READ(d, d_inode, i_ino),
		.name_hash = BPF_CORE_READ(d, d_name.hash),
		.kind = kind,
	};
	__u64 *count = bpf_map_lookup_elem(&files, &key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__s32 flags = 0;
	__u32 len = walk_path(s, task, d, vm, &flags);
	if (flags & PATH_TRUNCATED)
		bump(ST_TRUNCATED);
	fill_header(&s->h, EV_PATH, task, level);
	s->h.len = len;
	s->h.code = flags;
	s->h.a = key.dentry;
	s->h.b = key.ino;
	s->h.c = key.name_hash;
	s->h.d = kind;
	__u64 size = sizeof(struct event_header) + len;
	if (size > sizeof(struct event_header) + PATH_BUF)
		size = sizeof(struct event_header) + PATH_BUF;
	if (bpf_ringbuf_output(&events, s, size, 0) != 0) {
		bump(ST_RINGBUF_LOST);
		return 0;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&files, &key, &one, BPF_NOEXIST) != 0) {
		count = bpf_map_lookup_elem(&files, &key);
		if (count)
			__sync_fetch_and_add(count, 1);
		else
			bump(ST_FILES_FULL);
	}
	return 0;
}

static __always_inline struct file *file_of_fd(struct task_struct *task, long fd)
{
	if (fd < 0)
		return 0;
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if ((unsigned long)fd >= max)
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* FNV-1a over a NUL-terminated string of at most FAILED_NAME bytes. */
static __always_inline __u64 hash_str(const char *buf)
{
	__u64 h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < FAILED_NAME; i++) {
		char c = buf[i];
		if (!c)
			break;
		h ^= (__u8)c;
		h *= 0x100000001b3ULL;
	}
	return h;
}

__noinline int record_failed_open(__u64 task_p, int level, __u64 uname_p)
{
	struct task_struct *task = (void *)task_p;
	const char *uname = (const char *)uname_p;
	struct scratch *s = get_scratch();
	if (!s || !uname)
		return 0;
	long n = bpf_probe_read_user_str(s->data, FAILED_NAME, uname);
	if (n <= 0)
		return 0;
	__u64 h = hash_str(s->data);
	__u64 *count = bpf_map_lookup_elem(&failed, &h);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return 0;
	}
	fill_header(&s->h, EV_FAILED, task, level);
	s->h.len = n;
	s->h.a = h;
	__u64 size = sizeof(struct event_header) + (n & (FAILED_NAME - 1));
	if (n >= FAILED_NAME)
		size = sizeof(struct event_header) + FAILED_NAME;
	if (bpf_ringbuf_output(&events, s, size, 0) != 0) {
		bump(ST_RINGBUF_LOST);
		return 0;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&failed, &h, &one, BPF_NOEXIST) != 0) {
		count = bpf_map_lookup_elem(&failed, &h);
		if (count)
			__sync_fetch_and_add(count, 1);
		else
			bump(ST_FAILED_FULL);
	}
	return 0;
}

static __always_inline void count_net(struct net_key *key)
{
	__u64 *count = bpf_map_lookup_elem(&net, key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&net, key, &one, BPF_NOEXIST) != 0) {
		count = bpf_map_lookup_elem(&net, key);
		if (count)
			__sync_fetch_and_add(count, 1);
		else
			bump(ST_NET_FULL);
	}
}

/* Copies a user sockaddr into key: family, port and address bytes. */
static __always_inline void read_sockaddr(struct net_key *key, const void *uaddr, __u64 len)
{
	__u16 family = 0;
	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), uaddr) != 0)
		return;
	key->family = family;
	if (family == AF_INET_) {
		struct sockaddr_in sin = {};
		bpf_probe_read_user(&sin, sizeof(sin), uaddr);
		key->port = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(key->addr, &sin.sin_addr, 4);
	} else if (family == AF_INET6_) {
		struct sockaddr_in6 sin6 = {};
		bpf_probe_read_user(&sin6, sizeof(sin6), uaddr);
		key->port = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(key->addr, &sin6.sin6_addr, 16);
	} else if (family == AF_UNIX_) {
		/* sun_path may be abstract (leading NUL): copy bytes, not a string */
		__u64 n = len > 2 ? len - 2 : 0;
		if (n > 108) /* sizeof(sun_path) */
			n = 108;
		bpf_probe_read_user(key->addr, n & (SOCKADDR_BUF - 1), (const char *)uaddr + 2);
	}
}

/* The peer of an accepted socket, read from the kernel's socket. The peer's
 * port is ephemeral, so the local port is kept instead: one entry per
 * (client address, listening port). */
static __always_inline void read_accepted(struct net_key *key, struct file *f)
{
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	key->family = family;
	key->port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (family == AF_INET_) {
		__u32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(key->addr, &daddr, 4);
	} else if (family == AF_INET6_) {
		BPF_CORE_READ_INTO(key->addr, sk, __sk_common.skc_v6_daddr);
	}
}

SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long id)
{
	struct task_state *st = current_state();
	if (!st)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	__u32 nr = id;
	if (nr < MAX_SYSCALLS) {
		__u64 *c = bpf_map_lookup_elem(&syscalls, &nr);
		if (c)
			*c += 1;
	}
	struct scratch *s;
	struct pending *p;
	switch (nr) {
	case NR_open:
	case NR_creat:
	case NR_openat:
	case NR_openat2:
	case NR_mmap:
	case NR_mprotect:
	case NR_connect:
	case NR_bind:
	case NR_accept:
	case NR_accept4:
		break;
	default:
		return 0;
	}
	s = get_scratch();
	if (!s)
		return 0;
	p = &s->p;
	__builtin_memset(p, 0, sizeof(*p));
	p->nr = nr;
	switch (nr) {
	case NR_open:
	case NR_creat:
		p->arg0 = PT_REGS_PARM1_CORE_SYSCALL(regs);
		break;
	case NR_openat:
	case NR_openat2:
		p->arg0 = PT_REGS_PARM2_CORE_SYSCALL(regs);
		break;
	case NR_mmap:
		if (!(PT_REGS_PARM3_CORE_SYSCALL(regs) & PROT_EXEC_))
			return 0;
		p->arg1 = PT_REGS_PARM5_CORE_SYSCALL(regs); /* fd; -1 for anonymous */
		if ((long)p->arg1 < 0)
			return 0;
		break;
	case NR_mprotect:
		if (!(PT_REGS_PARM3_CORE_SYSCALL(regs) & PROT_EXEC_))
			return 0;
		p->arg0 = PT_REGS_PARM1_CORE_SYSCALL(regs);
		break;
	case NR_connect:
	case NR_bind:
		p->key.op = nr == NR_connect ? OP_CONNECT : OP_BIND;
		read_sockaddr(&p->key, (const void *)PT_REGS_PARM2_CORE_SYSCALL(regs),
			      PT_REGS_PARM3_CORE_SYSCALL(regs));
		break;
	case NR_accept:
	case NR_accept4:
		p->key.op = OP_ACCEPT;
		break;
	}
	__u64 tid = bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&inflight, &tid, p, BPF_ANY) != 0)
		bump(ST_PENDING_FULL);
	else
		st->pending = 1;
	return 0;
}

struct find_vma_ctx {
	struct file *file;
};

static long vma_file(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct find_vma_ctx *ctx = data;
	/* read as plain data: the global function takes integers, not pointers */
	bpf_probe_read_kernel(&ctx->file, sizeof(ctx->file), &vma->vm_file);
	return 0;
}

/* Only the syscalls sys_enter may have left a record for. */
static __always_inline bool has_exit_work(long nr)
{
	switch (nr) {
	case NR_open:
	case NR_creat:
	case NR_openat:
	case NR_openat2:
	case NR_mmap:
	case NR_mprotect:
	case NR_connect:
	case NR_bind:
	case NR_accept:
	case NR_accept4:
		return true;
	default:
		return false;
	}
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	/* the syscall number first: a typed load, before any task lookup */
	if (!has_exit_work(regs->orig_ax))
		return 0;
	struct task_state *st = current_state();
	if (!st || !st->pending)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	st->pending = 0;
	int level = st->level;
	__u64 tid = bpf_get_current_pid_tgid();
	struct pending *pp = bpf_map_lookup_elem(&inflight, &tid);
	if (!pp)
		return 0;
	struct pending p = *pp;
	bpf_map_delete_elem(&inflight, &tid);
	switch (p.nr) {
	case NR_open:
	case NR_creat:
	case NR_openat:
	case NR_openat2:
		if (ret >= 0) {
			struct file *f = file_of_fd(task, ret);
			if (f)
				record_file((__u64)task, level, (__u64)f, KIND_OPEN);
			else
				bump(ST_UNRESOLVED_FD);
		} else {
			record_failed_open((__u64)task, level, p.arg0);
		}
		break;
	case NR_mmap:
		if (ret < 0 && ret > -4096)
			break;
		{
			struct file *f = file_of_fd(task, p.arg1);
			if (f)
				record_file((__u64)task, level, (__u64)f, KIND_EXEC_MAP);
			else
				bump(ST_UNRESOLVED_FD);
		}
		break;
	case NR_mprotect:
		if (ret != 0)
			break;
		{
			struct find_vma_ctx ctx = {};
			struct task_struct *t = bpf_get_current_task_btf();
			bpf_find_vma(t, p.arg0, vma_file, &ctx, 0);
			if (ctx.file)
				record_file((__u64)task, level, (__u64)ctx.file, KIND_EXEC_MAP);
		}
		break;
	case NR_connect:
	case NR_bind:
		p.key.ok = (ret == 0 || ret == -EINPROGRESS_) ? 1 : 0;
		count_net(&p.key);
		break;
	case NR_accept:
	case NR_accept4:
		if (ret < 0)
			break;
		{
			struct file *f = file_of_fd(task, ret);
			if (!f)
				break;
			p.key.ok = 1;
			read_accepted(&p.key, f);
			count_net(&p.key);
		}
		break;
	}
	return 0;
}

static __always_inline void emit_simple(__u32 type, struct task_struct *task, int level, __s32 code)
{
	struct event_header *h = bpf_ringbuf_reserve(&events, sizeof(*h), 0);
	if (!h) {
		bump(ST_RINGBUF_LOST);
		return;
	}
	fill_header(h, type, task, level);
	h->code = code;
	bpf_ringbuf_submit(h, 0);
}

__noinline int emit_exec(__u64 task_p, int level, __u64 file_p)
{
	struct task_struct *p = (void *)task_p;
	struct file *f = (void *)file_p;
	struct scratch *s = get_scratch();
	if (!s || !f)
		return 0;
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *vm = BPF_CORE_READ(f, f_path.mnt);
	__s32 flags = 0;
	__u32 len = walk_path(s, p, d, vm, &flags);
	if (flags & PATH_TRUNCATED)
		bump(ST_TRUNCATED);
	fill_header(&s->h, EV_EXEC, p, level);
	s->h.len = len;
	s->h.code = flags;
	__u64 size = sizeof(struct event_header) + len;
	if (size > sizeof(struct event_header) + PATH_BUF)
		size = sizeof(struct event_header) + PATH_BUF;
	if (bpf_ringbuf_output(&events, s, size, 0) != 0)
		bump(ST_RINGBUF_LOST);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	int level = sandbox_level(p);
	if (level < 0)
		return 0;
	/* exec runs in the exec'ing task: use the untyped current task, as
	 * the global function takes integers, not BTF pointers */
	emit_exec(bpf_get_current_task(), level, (__u64)BPF_CORE_READ(bprm, file));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	/* threads are not processes */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	int level = sandbox_level(child);
	if (level < 0)
		return 0;
	struct event_header *h = bpf_ringbuf_reserve(&events, sizeof(*h), 0);
	if (!h) {
		bump(ST_RINGBUF_LOST);
		return 0;
	}
	fill_header(h, EV_FORK, child, level);
	h->pid = BPF_CORE_READ(child, tgid);
	h->ns_ppid = sandbox_level(parent) == level ? ns_tgid(parent, level) : 0;
	bpf_ringbuf_submit(h, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0;
	int level = sandbox_level(p);
	if (level < 0)
		return 0;
	emit_simple(EV_EXIT, p, level, BPF_CORE_READ(p, exit_code));
	return 0;
}

static __always_inline int count_symbol(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	if (sandbox_level(task) < 0)
		return 0;
	__u32 idx = bpf_get_attach_cookie(ctx);
	__u64 *c = bpf_map_lookup_elem(&symbol_calls, &idx);
	if (c)
		*c += 1;
	return 0;
}

SEC("uprobe.multi")
int on_symbol_multi(struct pt_regs *ctx)
{
	return count_symbol(ctx);
}

SEC("uprobe")
int on_symbol(struct pt_regs *ctx)
{
	return count_symbol(ctx);
}

/* Benchmarks only (TraceOptions::mechanism_only): empty hooks on the same
 * two tracepoints, to measure what the kernel's syscall-tracepoint
 * machinery costs by itself. Not loaded otherwise (the `?` prefix). */
SEC("?tp_btf/sys_enter")
int BPF_PROG(floor_sys_enter, struct pt_regs *regs, long id)
{
	return 0;
}

SEC("?tp_btf/sys_exit")
int BPF_PROG(floor_sys_exit, struct pt_regs *regs, long ret)
{
	return 0;
}
