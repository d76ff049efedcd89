// SPDX-License-Identifier: GPL-2.0-only
/* vexxy's runtime tracer. One set of programs serves every sandbox traced
 * on the host: user space arms a sandbox by mapping the inode of its PID
 * namespace to a slot, and everything recorded is keyed by that slot.
 * Everything is aggregated in the kernel: a file, a network address or a
 * symbol is reported once per slot, with counts, so a busy server costs a
 * map lookup per event rather than a trip to user space.
 *
 * The hot path is the filter: a task that asked recently on its CPU finds
 * its answer in a per-CPU copy keyed by its register block, with no helper
 * call; another pays for finding the current task, its PID-namespace level
 * (host tasks stop there) and a task-storage lookup; answers hold until
 * the set of armed sandboxes changes. Only sys_exit is hooked: it counts
 * the syscall, returns at once for the syscalls that record nothing and
 * reads the others' arguments from the registers they were entered with.
 * The two exits that never return (exit, exit_group) are counted when the
 * task exits.
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
#define NR_rt_sigreturn 15
#define NR_clone 56
#define NR_fork 57
#define NR_vfork 58
#define NR_exit 60
#define NR_exit_group 231
#define NR_clone3 435
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
#define MAP_ANONYMOUS_ 0x20
#define TS_COMPAT_ 0x0002
#define AF_UNIX_ 1
#define AF_INET_ 2
#define AF_INET6_ 10
#define EINPROGRESS_ 115
#define MAX_PID_LEVELS 8

/* Armed sandboxes: PID-namespace inode -> slot. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} targets SEC(".maps");

/* Element 0: the filter's control word (`struct control`), written by
 * user space. Element 1: the task exits seen on the host, an epoch for the
 * per-CPU answers (`exits_epoch`), bumped by the exit hook and never written
 * by user space. Both live in one cache line, which every syscall reads. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct control);
} control SEC(".maps");

#define CONTROL_EXITS 1

/* The exits epoch: element 1 of `control`, 8 bytes like the control word. */
static __always_inline __u64 *exits_epoch(void)
{
	__u32 k = CONTROL_EXITS;
	return (__u64 *)bpf_map_lookup_elem(&control, &k);
}

/* Loss counters, ST_COUNT per slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS * ST_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Syscall counts, MAX_SYSCALLS per slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SLOTS * MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u64);
} syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_UPROBES);
	__type(key, struct symbol_key);
	__type(value, __u64);
} symbol_calls SEC(".maps");

/* The probes each session asked for: (slot, cookie) -> 1. A shared probe
 * counts only for the sessions that want it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_UPROBES);
	__type(key, struct symbol_key);
	__type(value, __u8);
} symbol_wanted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct file_key);
	__type(value, __u64);
} files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, struct failed_key);
	__type(value, __u64);
} failed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct net_key);
	__type(value, __u64);
} net SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Records are few (first sightings and process events) and user space
 * drains the ring on a timer, never waiting on it: no wake-ups. */
#define RB_FLAGS BPF_RB_NO_WAKEUP

/* Per-CPU scratch for building one event: a ring-buffer record is `h`
 * followed by the first `h.len` bytes of `data`. */
struct scratch {
	struct event_header h;
	char data[PATH_BUF + NAME_BUF];
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
	__u32 event_header_slot;
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
	__u32 file_key_slot;
	__u32 failed_key_size;
	__u32 failed_key_hash;
	__u32 failed_key_slot;
	__u32 symbol_key_size;
	__u32 symbol_key_slot;
	__u32 symbol_key_cookie;
	__u32 control_size;
	__u32 control_generation;
	__u32 control_armed;
	__u32 net_key_size;
	__u32 net_key_op;
	__u32 net_key_ok;
	__u32 net_key_family;
	__u32 net_key_port;
	__u32 net_key_slot;
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
	.event_header_slot = OFF(event_header, slot),
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
	.file_key_slot = OFF(file_key, slot),
	.failed_key_size = sizeof(struct failed_key),
	.failed_key_hash = OFF(failed_key, hash),
	.failed_key_slot = OFF(failed_key, slot),
	.symbol_key_size = sizeof(struct symbol_key),
	.symbol_key_slot = OFF(symbol_key, slot),
	.symbol_key_cookie = OFF(symbol_key, cookie),
	.control_size = sizeof(struct control),
	.control_generation = OFF(control, generation),
	.control_armed = OFF(control, armed),
	.net_key_size = sizeof(struct net_key),
	.net_key_op = OFF(net_key, op),
	.net_key_ok = OFF(net_key, ok),
	.net_key_family = OFF(net_key, family),
	.net_key_port = OFF(net_key, port),
	.net_key_slot = OFF(net_key, slot),
	.net_key_addr = OFF(net_key, addr),
	.event_kind = EV_SYMBOL,
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

static __always_inline void bump(__u32 slot, __u32 idx)
{
	__u32 key = slot * ST_COUNT + idx;
	__u64 *v = bpf_map_lookup_elem(&stats, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Where `task` belongs: the level of the first armed PID namespace on its
 * chain (from the host's child down) and that target's slot; -1 when none. */
static __always_inline int sandbox_level(struct task_struct *task, __u32 *slot)
{
	struct pid *p = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	if (level == 0)
		return -1; /* the host's own namespace: the fast path */
	for (int i = 1; i < MAX_PID_LEVELS; i++) {
		if (i > level)
			break;
		struct upid up = {};
		bpf_core_read(&up, sizeof(up), &p->numbers[i]);
		__u32 inum = BPF_CORE_READ(up.ns, ns.inum);
		__u32 *s = bpf_map_lookup_elem(&targets, &inum);
		if (s) {
			*slot = *s;
			return i;
		}
	}
	return -1;
}

/* Where a task belongs: the level of the armed PID namespace on its chain
 * and that target's slot (level < 0: nowhere). */
struct where {
	__s32 level;
	__u32 slot;
};

/* The filter's answer for one task as of a generation of the target set. */
struct task_filter {
	__u32 generation;
	__s32 level;
	__u32 slot;
	__u32 pad;
};

/* Per task, so a task pays the namespace walk once per generation. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_filter);
} task_states SEC(".maps");

/* Per CPU, the answers for the two tasks that asked last (replaced in
 * turn), keyed by the task's
 * user register block — `task_pt_regs(current)`, which the syscall
 * tracepoints are handed — so that a hit needs no helper call to find the
 * current task (the mitigations of some CPUs make every call and return
 * cost tens of nanoseconds). The block lives at the top of the task's
 * kernel stack, unique among live tasks; a stack freed by an exit and
 * reused is told apart by the exits epoch, which every task exit bumps.
 *
 * The programs run with migration disabled but may be preempted (syscall
 * tracepoints are faultable), so another task can run on this CPU in the
 * middle of a read or a write: `seq` makes each entry a sequence lock. A
 * writer claims it by moving `seq` from even to odd with a
 * compare-and-swap (a writer that loses does not write) and releases it at
 * the next even value; a reader takes the copy only when `seq` was even
 * and unchanged around its reads. */
struct cpu_filter {
	__u64 seq;        /* 64-bit: the BPF ISA's compare-and-swap */
	__u64 key;        /* the task's pt_regs address */
	__u64 exits;      /* the exits epoch when it was written */
	__u32 generation;
	__s32 level;
	__u32 slot;
	__u32 pad;
};

/* Both entries of a CPU in one value: one lookup, adjacent lines. */
struct cpu_filters {
	struct cpu_filter e[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_filters);
} cpu_states SEC(".maps");

#define compiler_barrier() asm volatile("" ::: "memory")

/* The answer of the task storage (walking the namespaces at most once per
 * task and generation). */
static __always_inline void locate_slow(struct task_struct *t, __u32 generation, struct where *w)
{
	if (t->thread_pid->level == 0) {
		w->level = -1; /* the host's own namespace */
		w->slot = 0;
		return;
	}
	struct task_filter *st = bpf_task_storage_get(&task_states, t, 0,
						      BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		/* no storage (allocation failed): walk every time */
		__u32 slot = 0;
		w->level = sandbox_level(t, &slot);
		w->slot = slot;
		return;
	}
	if (st->generation != generation) {
		__u32 slot = 0;
		st->level = sandbox_level(t, &slot);
		st->slot = slot;
		st->generation = generation;
	}
	w->level = st->level;
	w->slot = st->slot;
}

/* The answer `cs` holds for the task with register block `regs`, if it
 * holds one that is current and was read whole. */
static __always_inline bool read_cached(struct cpu_filter *cs, __u64 regs, __u64 epoch,
					__u32 generation, struct where *w)
{
	__u64 seq = cs->seq;
	compiler_barrier();
	if ((seq & 1) || cs->key != regs || cs->exits != epoch || cs->generation != generation)
		return false;
	w->level = cs->level;
	w->slot = cs->slot;
	compiler_barrier();
	return cs->seq == seq;
}

/* Whether the current task belongs to an armed sandbox, and where (into
 * `w`). `regs` is the task's user register block (what the syscall
 * tracepoints pass). Nothing armed: one load. A task that asked recently
 * on this CPU: the per-CPU copy, no helper call. Another: the current
 * task, its PID-namespace level (host tasks stop there) and its task
 * storage, with the namespace walk once per generation. */
static __always_inline bool locate(__u64 regs, struct where *w)
{
	__u32 zero = 0;
	struct control *c = bpf_map_lookup_elem(&control, &zero);
	if (!c || c->armed == 0)
		return false;
	__u32 generation = c->generation;
	__u64 *ep = exits_epoch();
	if (!ep)
		return false;
	__u64 epoch = *ep;
	struct cpu_filters *cf = bpf_map_lookup_elem(&cpu_states, &zero);
	if (!cf)
		return false;
	struct cpu_filter *c0 = &cf->e[0];
	struct cpu_filter *c1 = &cf->e[1];
	if (read_cached(c0, regs, epoch, generation, w) || read_cached(c1, regs, epoch, generation, w))
		return w->level >= 0;
	locate_slow(bpf_get_current_task_btf(), generation, w);
	/* replace the entry not replaced last time (entry 0's `pad` says) */
	struct cpu_filter *cs = (c0->pad & 1) ? c1 : c0;
	__u64 seq = cs->seq;
	if (!(seq & 1) && __sync_val_compare_and_swap(&cs->seq, seq, seq + 1) == seq) {
		compiler_barrier();
		cs->key = regs;
		cs->exits = epoch;
		cs->generation = generation;
		cs->level = w->level;
		cs->slot = w->slot;
		compiler_barrier();
		cs->seq = seq + 2;
	}
	c0->pad ^= 1;
	return w->level >= 0;
}

/* For the uprobes (which have no syscall's register block at hand): the
 * task storage only. */
static __always_inline bool locate_task(struct task_struct *t, struct where *w)
{
	__u32 zero = 0;
	struct control *c = bpf_map_lookup_elem(&control, &zero);
	if (!c || c->armed == 0)
		return false;
	locate_slow(t, c->generation, w);
	return w->level >= 0;
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
					struct task_struct *task, int level, __u32 slot)
{
	h->type = type;
	h->len = 0;
	h->slot = slot;
	h->pad = 0;
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->ns_pid = ns_tgid(task, level);
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	__u32 parent_slot = 0;
	h->ns_ppid = sandbox_level(parent, &parent_slot) == level && parent_slot == slot
		? ns_tgid(parent, level) : 0;
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
__noinline int record_file(__u64 task_p, int level, __u32 slot, __u64 file_p, __u32 kind)
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
		.slot = slot,
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
		bump(slot, ST_TRUNCATED);
	fill_header(&s->h, EV_PATH, task, level, slot);
	s->h.len = len;
	s->h.code = flags;
	s->h.a = key.dentry;
	s->h.b = key.ino;
	s->h.c = key.name_hash;
	s->h.d = kind;
	__u64 size = sizeof(struct event_header) + len;
	if (size > sizeof(struct event_header) + PATH_BUF)
		size = sizeof(struct event_header) + PATH_BUF;
	if (bpf_ringbuf_output(&events, s, size, RB_FLAGS) != 0) {
		bump(slot, ST_RINGBUF_LOST);
		return 0;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&files, &key, &one, BPF_NOEXIST) != 0) {
		count = bpf_map_lookup_elem(&files, &key);
		if (count)
			__sync_fetch_and_add(count, 1);
		else
			bump(slot, ST_FILES_FULL);
	}
	return 0;
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

__noinline int record_failed_open(__u64 task_p, int level, __u32 slot, __u64 uname_p)
{
	struct task_struct *task = (void *)task_p;
	const char *uname = (const char *)uname_p;
	struct scratch *s = get_scratch();
	if (!s || !uname)
		return 0;
	long n = bpf_probe_read_user_str(s->data, FAILED_NAME, uname);
	if (n <= 0)
		return 0;
	struct failed_key key = { .hash = hash_str(s->data), .slot = slot };
	__u64 *count = bpf_map_lookup_elem(&failed, &key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return 0;
	}
	fill_header(&s->h, EV_FAILED, task, level, slot);
	s->h.len = n;
	s->h.a = key.hash;
	__u64 size = sizeof(struct event_header) + (n & (FAILED_NAME - 1));
	if (n >= FAILED_NAME)
		size = sizeof(struct event_header) + FAILED_NAME;
	if (bpf_ringbuf_output(&events, s, size, RB_FLAGS) != 0) {
		bump(slot, ST_RINGBUF_LOST);
		return 0;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&failed, &key, &one, BPF_NOEXIST) != 0) {
		count = bpf_map_lookup_elem(&failed, &key);
		if (count)
			__sync_fetch_and_add(count, 1);
		else
			bump(slot, ST_FAILED_FULL);
	}
	return 0;
}

/* A record with no body: that something new was seen in `slot`. */
static __always_inline void announce(__u32 type, __u32 slot, __u64 a)
{
	struct event_header *h = bpf_ringbuf_reserve(&events, sizeof(*h), 0);
	if (!h) {
		bump(slot, ST_RINGBUF_LOST);
		return;
	}
	__builtin_memset(h, 0, sizeof(*h));
	h->type = type;
	h->slot = slot;
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->a = a;
	bpf_ringbuf_submit(h, RB_FLAGS);
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
			bump(key->slot, ST_NET_FULL);
		return;
	}
	announce(EV_NET, key->slot, 0);
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct net_key);
} net_scratch SEC(".maps");

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

/* The file behind `fd` of task `t` (as an integer, which is what
 * the global functions take): the fd table is walked with plain loads
 * (faults are caught) and one probe read for the slot, whose index the
 * verifier cannot bound. */
static __always_inline __u64 fd_file(struct task_struct *t, long fd)
{
	if (fd < 0)
		return 0;
	struct fdtable *fdt = t->files->fdt;
	if ((unsigned long)fd >= fdt->max_fds)
		return 0;
	__u64 f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fdt->fd[fd]);
	return f;
}

/* Counts a use of `f` in `slot` when its key is known already: the common
 * case on a busy server (the same files, again and again), done with plain
 * loads. False when the key is new and the caller must record it. */
static __always_inline bool count_known_file(__u64 file_p, __u32 slot, __u32 kind)
{
	struct file *f = bpf_core_cast((void *)file_p, struct file);
	struct dentry *d = f->f_path.dentry;
	struct file_key key = {
		.dentry = (__u64)d,
		.ino = d->d_inode->i_ino,
		.name_hash = d->d_name.hash,
		.kind = kind,
		.slot = slot,
	};
	__u64 *count = bpf_map_lookup_elem(&files, &key);
	if (!count)
		return false;
	__sync_fetch_and_add(count, 1);
	return true;
}

/* The syscalls whose exit records something beyond their count; all
 * others cost sys_exit the filter, a counter and this comparison. */
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

/* A 32-bit syscall (a compat task, or `int 0x80`): its numbers are not the
 * x86_64 ones this file knows. */
static __always_inline bool is_compat(struct task_struct *t)
{
	if (!bpf_core_field_exists(t->thread_info.status))
		return false;
	return t->thread_info.status & TS_COMPAT_;
}

/* The address a connected (`peer`) or bound socket has, from the kernel's
 * socket: the peer's address and port, or the local ones. */
static __always_inline void read_bound(struct net_key *key, struct file *f, bool peer)
{
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	key->family = family;
	if (family == AF_INET_) {
		__u32 a = peer ? BPF_CORE_READ(sk, __sk_common.skc_daddr)
			       : BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(key->addr, &a, 4);
	} else if (family == AF_INET6_) {
		if (peer)
			BPF_CORE_READ_INTO(key->addr, sk, __sk_common.skc_v6_daddr);
		else
			BPF_CORE_READ_INTO(key->addr, sk, __sk_common.skc_v6_rcv_saddr);
	} else if (family == AF_UNIX_) {
		/* the path is in the unix socket's address, which a bound
		 * socket has; a connected one names its peer the same way */
		struct unix_sock *u = (void *)sk;
		struct sock *named = peer ? BPF_CORE_READ(u, peer) : sk;
		struct unix_sock *nu = (void *)named;
		struct unix_address *addr = BPF_CORE_READ(nu, addr);
		if (addr) {
			int len = BPF_CORE_READ(addr, len);
			__u64 n = len > 2 ? len - 2 : 0;
			if (n > 108)
				n = 108;
			bpf_probe_read_kernel(key->addr, n & (SOCKADDR_BUF - 1),
					      (const char *)&addr->name[0] + 2);
		}
		return;
	}
	key->port = peer ? bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport))
			 : BPF_CORE_READ(sk, __sk_common.skc_num);
}

/* One more call of `nr` in `slot`, counted at its exit. A sigreturn
 * leaves the syscall number at -1 (the restored registers disable syscall
 * restarting), and a new task's first return from clone, fork or vfork
 * (0 in the child) is the parent's call, counted there. */
static __always_inline void count_syscall(__u32 slot, long nr, long ret)
{
	if (nr == -1)
		nr = NR_rt_sigreturn;
	else if (ret == 0 && (nr == NR_clone || nr == NR_clone3 || nr == NR_fork || nr == NR_vfork))
		return;
	if ((unsigned long)nr < MAX_SYSCALLS) {
		__u32 idx = slot * MAX_SYSCALLS + (__u32)nr;
		__u64 *c = bpf_map_lookup_elem(&syscalls, &idx);
		if (c)
			*c += 1;
	}
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

/* connect, bind and accept: the key is built here, in per-CPU scratch
 * space, as it is too large for the stack beside the rest. For a failed
 * connect or bind `arg0`/`arg1` are the user's sockaddr and its length; for
 * one that succeeded (`ret` 0 or EINPROGRESS) `arg0` is the socket's file
 * and `arg1` 1, and an AF_UNIX socket falls back to nothing better than
 * its local name; for accept `arg0` is the accepted socket's file. */
__noinline int record_net(__u32 slot, __u32 nr, __u64 arg0, __u64 arg1, long ret)
{
	__u32 zero = 0;
	struct net_key *key = bpf_map_lookup_elem(&net_scratch, &zero);
	if (!key)
		return 0;
	__builtin_memset(key, 0, sizeof(*key));
	key->slot = slot;
	if (nr == NR_accept || nr == NR_accept4) {
		struct file *f = (void *)arg0;
		if (!f)
			return 0;
		key->op = OP_ACCEPT;
		key->ok = 1;
		read_accepted(key, f);
	} else if (ret == 0 || ret == -EINPROGRESS_) {
		struct file *f = (void *)arg0;
		if (!f)
			return 0;
		key->op = nr == NR_connect ? OP_CONNECT : OP_BIND;
		key->ok = 1;
		read_bound(key, f, nr == NR_connect);
	} else {
		key->op = nr == NR_connect ? OP_CONNECT : OP_BIND;
		key->ok = 0;
		read_sockaddr(key, (const void *)arg0, arg1);
	}
	count_net(key);
	return 0;
}

/* The current task as a plain integer, which is what the global
 * functions take; called only on the (rare) paths that reach them. */
static __always_inline __u64 untyped_current(void)
{
	return bpf_get_current_task();
}

/* Everything is decided at exit, where the result is known: the
 * arguments are still in the user registers the syscall was entered with
 * (x86_64: di, si, dx, r10, r8, r9; the kernel writes only ax), so
 * sys_enter is not hooked at all (one program per syscall, not two). */
SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	struct where w;
	if (!locate((__u64)regs, &w))
		return 0;
	long nr = regs->orig_ax;
	count_syscall(w.slot, nr, ret);
	if (!has_exit_work(nr))
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	if (is_compat(t))
		return 0;
	int level = w.level;
	__u32 slot = w.slot;
	switch (nr) {
	case NR_open:
	case NR_creat:
	case NR_openat:
	case NR_openat2:
		if (ret >= 0) {
			__u64 f = fd_file(t, ret);
			if (!f)
				bump(slot, ST_UNRESOLVED_FD);
			else if (!count_known_file(f, slot, KIND_OPEN))
				record_file(untyped_current(), level, slot, f, KIND_OPEN);
		} else {
			__u64 name = (nr == NR_open || nr == NR_creat) ? regs->di : regs->si;
			record_failed_open(untyped_current(), level, slot, name);
		}
		break;
	case NR_mmap:
		if (!(regs->dx & PROT_EXEC_) || (regs->r10 & MAP_ANONYMOUS_) || (long)regs->r8 < 0)
			break;
		if (ret < 0 && ret > -4096)
			break;
		{
			__u64 f = fd_file(t, (long)regs->r8);
			if (!f)
				bump(slot, ST_UNRESOLVED_FD);
			else if (!count_known_file(f, slot, KIND_EXEC_MAP))
				record_file(untyped_current(), level, slot, f, KIND_EXEC_MAP);
		}
		break;
	case NR_mprotect:
		if (!(regs->dx & PROT_EXEC_) || ret != 0)
			break;
		{
			struct find_vma_ctx ctx = {};
			bpf_find_vma(t, regs->di, vma_file, &ctx, 0);
			if (ctx.file)
				record_file(untyped_current(), level, slot, (__u64)ctx.file, KIND_EXEC_MAP);
		}
		break;
	case NR_connect:
	case NR_bind:
		/* a connected or bound socket says itself where: the user's
		 * buffer, read only on failure, could have been rewritten by
		 * another thread while the call ran */
		if (ret == 0 || ret == -EINPROGRESS_)
			record_net(slot, nr, fd_file(t, regs->di), 1, ret);
		else
			record_net(slot, nr, regs->si, regs->dx, ret);
		break;
	case NR_accept:
	case NR_accept4:
		if (ret >= 0)
			record_net(slot, nr, fd_file(t, ret), 0, ret);
		break;
	}
	return 0;
}

static __always_inline void emit_simple(__u32 type, struct task_struct *task, int level,
					__u32 slot, __s32 code)
{
	struct event_header *h = bpf_ringbuf_reserve(&events, sizeof(*h), 0);
	if (!h) {
		bump(slot, ST_RINGBUF_LOST);
		return;
	}
	fill_header(h, type, task, level, slot);
	h->code = code;
	bpf_ringbuf_submit(h, RB_FLAGS);
}

__noinline int emit_exec(__u64 task_p, int level, __u32 slot, __u64 file_p)
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
		bump(slot, ST_TRUNCATED);
	fill_header(&s->h, EV_EXEC, p, level, slot);
	s->h.len = len;
	s->h.code = flags;
	__u64 size = sizeof(struct event_header) + len;
	if (size > sizeof(struct event_header) + PATH_BUF)
		size = sizeof(struct event_header) + PATH_BUF;
	if (bpf_ringbuf_output(&events, s, size, RB_FLAGS) != 0)
		bump(slot, ST_RINGBUF_LOST);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 slot = 0;
	int level = sandbox_level(p, &slot);
	if (level < 0)
		return 0;
	/* exec runs in the exec'ing task: use the untyped current task, as
	 * the global function takes integers, not BTF pointers */
	emit_exec(bpf_get_current_task(), level, slot, (__u64)BPF_CORE_READ(bprm, file));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	/* threads are not processes */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	__u32 slot = 0;
	int level = sandbox_level(child, &slot);
	if (level < 0)
		return 0;
	struct event_header *h = bpf_ringbuf_reserve(&events, sizeof(*h), 0);
	if (!h) {
		bump(slot, ST_RINGBUF_LOST);
		return 0;
	}
	fill_header(h, EV_FORK, child, level, slot);
	h->pid = BPF_CORE_READ(child, tgid);
	__u32 parent_slot = 0;
	h->ns_ppid = sandbox_level(parent, &parent_slot) == level && parent_slot == slot
		? ns_tgid(parent, level) : 0;
	bpf_ringbuf_submit(h, RB_FLAGS);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	/* every exiting task: its kernel stack may be reused, so the per-CPU
	 * answers keyed by its address must not outlive it */
	__u64 *ep = exits_epoch();
	if (ep)
		__sync_fetch_and_add(ep, 1);
	__u32 slot = 0;
	int level = sandbox_level(p, &slot);
	if (level < 0)
		return 0;
	/* exit and exit_group never reach sys_exit: a task that leaves
	 * through one is still in it (one killed by a signal is in whatever
	 * it was doing) */
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(p);
	long nr = BPF_CORE_READ(regs, orig_ax);
	if (nr == NR_exit || nr == NR_exit_group)
		count_syscall(slot, nr, 0);
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0;
	emit_simple(EV_EXIT, p, level, slot, BPF_CORE_READ(p, exit_code));
	return 0;
}

/* One probe per (library file, offset), shared by every sandbox that asked
 * for it: the cookie names the probe, the task's slot the sandbox. */
static __always_inline int count_symbol(void *ctx)
{
	struct where w;
	if (!locate_task(bpf_get_current_task_btf(), &w))
		return 0;
	struct symbol_key key = {
		.slot = w.slot,
		.cookie = bpf_get_attach_cookie(ctx),
	};
	__u64 *c = bpf_map_lookup_elem(&symbol_calls, &key);
	if (c) {
		__sync_fetch_and_add(c, 1);
		return 0;
	}
	/* a probe another session asked for: not this one's evidence */
	if (!bpf_map_lookup_elem(&symbol_wanted, &key))
		return 0;
	__u64 one = 1;
	if (bpf_map_update_elem(&symbol_calls, &key, &one, BPF_NOEXIST) == 0) {
		announce(EV_SYMBOL, key.slot, key.cookie);
		return 0;
	}
	/* another CPU inserted it first: this CPU's value exists now */
	c = bpf_map_lookup_elem(&symbol_calls, &key);
	if (c)
		__sync_fetch_and_add(c, 1);
	else
		bump(key.slot, ST_SYMBOLS_FULL);
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

/* Benchmarks only (TraceOptions::mechanism_only): an empty hook on the
 * tracepoint the tracer uses, to measure what the kernel's
 * syscall-tracepoint machinery costs by itself. Not loaded otherwise (the
 * `?` prefix). */
SEC("?tp_btf/sys_exit")
int BPF_PROG(floor_sys_exit, struct pt_regs *regs, long ret)
{
	return 0;
}
