/* The records and map keys the BPF programs (trace.bpf.c) share with the
 * Rust loader. The loader mirrors nothing by hand: libbpf-cargo generates
 * Rust types for these structs and enums from the object's BTF (the
 * skeleton's `types` module, read in src/wire.rs), and `wire_layout` in
 * trace.bpf.c gives the compiler's sizes and offsets to the loader's tests.
 * The enums are constants for C; as types they only serve to put the
 * constants in BTF, so the wire structs keep fixed-width integer fields. */
#ifndef VEXXY_TRACE_H
#define VEXXY_TRACE_H

#define PATH_BUF 4096          /* bytes of path components per event (power of two) */
#define NAME_BUF 256           /* one component, with its NUL */
#define MAX_COMPONENTS 64      /* dentries walked per path */
#define MAX_SYSCALLS 512
#define MAX_SLOTS 64           /* sandboxes traced at once by one set of programs */
#define MAX_UPROBES 65536      /* distinct (file, offset) probes attached at once */
#define FAILED_NAME 256        /* bytes of a failed open's name that are kept */
#define SOCKADDR_BUF 128       /* holds sun_path (108); a power of two for the verifier */

/* file_key.kind */
enum file_kind {
	KIND_OPEN = 1,
	KIND_EXEC_MAP = 2,
};

/* event_header.type */
enum event_kind {
	EV_PATH = 1,    /* first sight of a file_key: its path */
	EV_FAILED = 2,  /* first sight of a failed-open name */
	EV_EXEC = 3,
	EV_FORK = 4,
	EV_EXIT = 5,
	EV_NET = 6,     /* first sight of a net_key (no body: the map has it) */
	EV_SYMBOL = 7,  /* first call of a probed function in a slot: a = cookie */
};

/* stats indices */
enum stat_index {
	ST_RINGBUF_LOST = 0,
	ST_FILES_FULL = 1,
	ST_FAILED_FULL = 2,
	ST_NET_FULL = 3,
	ST_TRUNCATED = 4,
	ST_UNRESOLVED_FD = 5,
	ST_SYMBOLS_FULL = 6,
	ST_COUNT = 7,
};

/* path flags (event_header.code of EV_PATH and EV_EXEC) */
enum path_flag {
	PATH_TRUNCATED = 1,
	PATH_COMPLETE = 2,
};

/* net_key.op */
enum net_op {
	OP_CONNECT = 1,
	OP_BIND = 2,
	OP_ACCEPT = 3,
};

struct file_key {
	__u64 dentry;
	__u64 ino;
	__u32 name_hash;
	__u32 kind;
	__u32 slot;
	__u32 pad;
};

struct failed_key {
	__u64 hash;
	__u32 slot;
	__u32 pad;
};

struct symbol_key {
	__u32 slot;
	__u32 cookie;
};

/* The filter's state user space changes: a target's arming or disarming
 * bumps `generation`, so every task recomputes its cached answer once. */
struct control {
	__u32 generation;
	__u32 armed;
};

struct net_key {
	__u8 op;
	__u8 ok;
	__u16 family;
	__u16 port;
	__u16 slot;
	__u8 addr[SOCKADDR_BUF];
};

/* Header of every ring-buffer record. For EV_PATH the body is `len` bytes
 * of NUL-terminated path components, leaf first. */
struct event_header {
	__u32 type;
	__u32 len;
	__u32 slot;       /* the session (sandbox) the record belongs to */
	__u32 pad;
	__u32 pid;        /* host tgid */
	__u32 ns_pid;     /* tgid inside the sandbox's pid namespace */
	__u32 ns_ppid;    /* parent tgid inside the namespace (0 if outside it) */
	__s32 code;       /* exit code for EV_EXIT; path flags for EV_PATH */
	__u64 a;          /* EV_PATH: file_key.dentry; EV_FAILED: name hash; EV_SYMBOL: cookie */
	__u64 b;          /* EV_PATH: file_key.ino */
	__u32 c;          /* EV_PATH: file_key.name_hash */
	__u32 d;          /* EV_PATH: file_key.kind */
	char comm[16];
};

#endif
