#include "targets/process/thread_db.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <proc_service.h>
#include <spdlog/spdlog.h>
#include <sys/ptrace.h>
#include <sys/reg.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <thread_db.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

// What libthread_db hands back to our proc_service functions: defined by
// its user (proc_service.h leaves it opaque).
struct ps_prochandle {
  pid_t pid = 0;
  dbgstub::ThreadDb::ReadMemory read;
  dbgstub::ThreadDb::WriteMemory write;
};

namespace dbgstub {
namespace {

// ---------------------------------------------------------------------------
// Symbols of the mapped ELF files

struct Module {
  std::string path;
  uint64_t base = 0;  // where its file offset 0 is mapped
};

// File-backed modules of `pid`, in address order, each with the address of
// its first mapping of file offset 0.
std::vector<Module> mapped_modules(pid_t pid) {
  std::vector<Module> out;
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    if (!(in >> range >> perms >> offset >> dev >> inode)) continue;
    std::getline(in >> std::ws, path);
    if (path.empty() || path[0] != '/' || path.find(" (deleted)") != std::string::npos) continue;
    if (std::strtoull(offset.c_str(), nullptr, 16) != 0) continue;
    bool seen = false;
    for (auto& m : out) seen = seen || m.path == path;
    if (seen) continue;
    out.push_back({path, std::strtoull(range.c_str(), nullptr, 16)});
  }
  return out;
}

bool read_at(int fd, uint64_t off, void* buf, std::size_t len) {
  return ::pread(fd, buf, len, static_cast<off_t>(off)) == static_cast<ssize_t>(len);
}

// `name`'s value in the symbol tables of ELF file `m`, relocated to where
// the process mapped it.
std::optional<uint64_t> module_symbol(const Module& m, const std::string& name) {
  int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  Elf64_Ehdr eh{};
  if (!read_at(fd, 0, &eh, sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_shnum > 4096 || eh.e_phnum > 4096)
    return std::nullopt;
  // Load bias: the segment at file offset 0 sits at base, page-aligned.
  std::vector<Elf64_Phdr> ph(eh.e_phnum);
  if (!read_at(fd, eh.e_phoff, ph.data(), ph.size() * sizeof(Elf64_Phdr))) return std::nullopt;
  std::optional<uint64_t> first_vaddr;
  for (auto& p : ph)
    if (p.p_type == PT_LOAD && (!first_vaddr || p.p_vaddr < *first_vaddr)) first_vaddr = p.p_vaddr;
  if (!first_vaddr) return std::nullopt;
  uint64_t bias = m.base - (*first_vaddr & ~uint64_t{0xfff});
  if (eh.e_type == ET_EXEC) bias = 0;

  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  if (!read_at(fd, eh.e_shoff, sh.data(), sh.size() * sizeof(Elf64_Shdr))) return std::nullopt;
  constexpr uint64_t kMaxTable = 64 << 20;
  for (auto& s : sh) {
    if ((s.sh_type != SHT_DYNSYM && s.sh_type != SHT_SYMTAB) || s.sh_link >= sh.size()) continue;
    const Elf64_Shdr& strs = sh[s.sh_link];
    if (s.sh_size > kMaxTable || strs.sh_size > kMaxTable) continue;
    std::vector<Elf64_Sym> syms(s.sh_size / sizeof(Elf64_Sym));
    std::string names(strs.sh_size, '\0');
    if (!read_at(fd, s.sh_offset, syms.data(), syms.size() * sizeof(Elf64_Sym)) ||
        !read_at(fd, strs.sh_offset, names.data(), names.size()))
      continue;
    for (auto& sym : syms) {
      if (sym.st_shndx == SHN_UNDEF || sym.st_name >= names.size()) continue;
      if (std::strcmp(names.c_str() + sym.st_name, name.c_str()) != 0) continue;
      return sym.st_shndx == SHN_ABS ? sym.st_value : sym.st_value + bias;
    }
  }
  return std::nullopt;
}

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// ---------------------------------------------------------------------------
// libthread_db

const char* td_error_name(td_err_e e) {
  switch (e) {
    case TD_OK: return "ok";
    case TD_ERR: return "generic error";
    case TD_NOTHR: return "no thread";
    case TD_NOSV: return "no synchronization handle";
    case TD_NOLWP: return "no LWP";
    case TD_BADPH: return "invalid process handle";
    case TD_BADTH: return "invalid thread handle";
    case TD_BADSH: return "invalid synchronization handle";
    case TD_BADTA: return "invalid thread agent";
    case TD_BADKEY: return "invalid key";
    case TD_NOMSG: return "no event message";
    case TD_NOFPREGS: return "FPU register set not available";
    case TD_NOLIBTHREAD: return "application not linked with libthread";
    case TD_NOEVENT: return "requested event is not supported";
    case TD_NOCAPAB: return "capability not available";
    case TD_DBERR: return "debugger service failed";
    case TD_NOAPLIC: return "operation not applicable";
    case TD_NOTSD: return "no thread-specific data";
    case TD_MALLOC: return "out of memory";
    case TD_PARTIALREG: return "partial register set";
    case TD_NOXREGS: return "X register set not available";
    case TD_TLSDEFER: return "thread has not yet allocated TLS for given module";
    case TD_VERSION: return "version mismatch";
    default: return "unknown libthread_db error";
  }
}

using td_init_ftype = td_err_e();
using td_ta_new_ftype = td_err_e(ps_prochandle*, td_thragent_t**);
using td_ta_delete_ftype = td_err_e(td_thragent_t*);
using td_ta_map_lwp2thr_ftype = td_err_e(const td_thragent_t*, lwpid_t, td_thrhandle_t*);
using td_thr_tls_get_addr_ftype = td_err_e(const td_thrhandle_t*, psaddr_t, size_t, psaddr_t*);
using td_thr_tlsbase_ftype = td_err_e(const td_thrhandle_t*, unsigned long, psaddr_t*);

template <class F>
F* symbol(void* handle, const char* name) {
  return reinterpret_cast<F*>(::dlsym(handle, name));
}

}  // namespace

struct ThreadDb::Impl {
  ps_prochandle ph;
  void* handle = nullptr;
  td_thragent_t* agent = nullptr;
  td_ta_delete_ftype* ta_delete = nullptr;
  td_ta_map_lwp2thr_ftype* map_lwp2thr = nullptr;
  td_thr_tls_get_addr_ftype* tls_get_addr = nullptr;
  td_thr_tlsbase_ftype* tlsbase = nullptr;

  ~Impl() {
    if (agent && ta_delete) ta_delete(agent);
    if (handle) ::dlclose(handle);
  }

  // Loads `library` and lets it take on the process; false (and nothing
  // kept) if it can't.
  bool load(const std::string& library) {
    void* h = ::dlopen(library.c_str(), RTLD_NOW);
    if (!h) {
      spdlog::debug("libthread_db: dlopen {}: {}", library, ::dlerror());
      return false;
    }
    auto* init = symbol<td_init_ftype>(h, "td_init");
    auto* ta_new = symbol<td_ta_new_ftype>(h, "td_ta_new");
    auto* del = symbol<td_ta_delete_ftype>(h, "td_ta_delete");
    auto* map = symbol<td_ta_map_lwp2thr_ftype>(h, "td_ta_map_lwp2thr");
    if (!ta_new || !map) {
      spdlog::debug("libthread_db: {} lacks td_ta_new or td_ta_map_lwp2thr", library);
      ::dlclose(h);
      return false;
    }
    if (init) init();
    td_thragent_t* ta = nullptr;
    td_err_e err = ta_new(&ph, &ta);
    if (err != TD_OK) {
      spdlog::debug("libthread_db: {}: td_ta_new: {}", library, td_error_name(err));
      ::dlclose(h);
      return false;
    }
    handle = h;
    agent = ta;
    ta_delete = del;
    map_lwp2thr = map;
    tls_get_addr = symbol<td_thr_tls_get_addr_ftype>(h, "td_thr_tls_get_addr");
    tlsbase = symbol<td_thr_tlsbase_ftype>(h, "td_thr_tlsbase");
    spdlog::info("libthread_db {} loaded for process {}", library, ph.pid);
    return true;
  }
};

namespace {

// A library from the search path runs in dbgstub. The debugger chooses the
// path; so the library and every folder above it (links resolved) must be
// owned by root or dbgstub's user and writable by no one else (a sticky
// folder such as /tmp aside: others can't rename what is in it). Then no
// debugged program running as another user can have planted it, or swap
// it before it is loaded (by its resolved name). Returns that name.
std::optional<std::string> trusted_library(const std::string& library) {
  auto trusted = [](const std::string& path, bool folder) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return false;
    bool owner = st.st_uid == 0 || st.st_uid == ::geteuid();
    bool others_write = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !(folder && (st.st_mode & S_ISVTX));
    return owner && !others_write;
  };
  char real[PATH_MAX];
  if (::realpath(library.c_str(), real)) {
    std::string file = real;
    bool ok = trusted(file, false);
    for (auto slash = file.rfind('/'); ok && slash != std::string::npos && slash > 0; slash = file.rfind('/', slash - 1))
      ok = trusted(file.substr(0, slash), true);
    if (ok && trusted("/", true)) return file;
  }
  spdlog::warn("libthread_db: {} skipped: it or a folder above it is writable by, or belongs to, another user",
               library);
  return std::nullopt;
}

}  // namespace

ThreadDb::ThreadDb(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ThreadDb::~ThreadDb() = default;

Result<std::unique_ptr<ThreadDb>> ThreadDb::open(pid_t pid, const std::string& search_path, ReadMemory read,
                                                 WriteMemory write) {
  auto impl = std::make_unique<Impl>();
  impl->ph.pid = pid;
  impl->ph.read = std::move(read);
  impl->ph.write = std::move(write);
  // As gdbserver's thread_db_load_search: "$pdir" is skipped (the threads
  // library's directory is not known here), "$sdir" is the system's own
  // search, any other entry a directory holding libthread_db.so.1.
  std::size_t b = 0;
  while (b <= search_path.size()) {
    std::size_t e = search_path.find(':', b);
    if (e == std::string::npos) e = search_path.size();
    std::string dir = search_path.substr(b, e - b);
    b = e + 1;
    if (dir.empty() || dir == "$pdir") continue;
    std::string library = dir == "$sdir" ? std::string("libthread_db.so.1") : dir + "/libthread_db.so.1";
    if (dir != "$sdir") {
      if (::access(library.c_str(), R_OK) != 0) continue;
      auto resolved = trusted_library(library);
      if (!resolved) continue;
      library = *resolved;
    }
    if (impl->load(library)) return std::unique_ptr<ThreadDb>(new ThreadDb(std::move(impl)));
  }
  return make_error(2, "no libthread_db for process " + std::to_string(pid) + " in '" + search_path + "'");
}

Result<uint64_t> ThreadDb::tls_address(pid_t tid, uint64_t offset, uint64_t lm) {
  Impl& d = *impl_;
  if (!d.tls_get_addr || (lm == 0 && !d.tlsbase)) return make_error(95, "libthread_db has no TLS support");
  td_thrhandle_t th{};
  td_err_e err = d.map_lwp2thr(d.agent, tid, &th);
  if (err != TD_OK) return make_error(static_cast<int>(err), std::string("td_ta_map_lwp2thr: ") + td_error_name(err));
  psaddr_t addr = nullptr;
  if (lm != 0) {
    err = d.tls_get_addr(&th, reinterpret_cast<psaddr_t>(static_cast<uintptr_t>(lm)), offset, &addr);
  } else {
    // A static executable: no link_map; glibc gives the executable's TLS
    // module id 1 (gdbserver does the same).
    err = d.tlsbase(&th, 1, &addr);
    if (err == TD_OK) addr = static_cast<char*>(addr) + offset;
  }
  if (err != TD_OK) return make_error(static_cast<int>(err), std::string("TLS address: ") + td_error_name(err));
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(addr));
}

std::optional<uint64_t> lookup_process_symbol(pid_t pid, const std::string& object, const std::string& name) {
  auto modules = mapped_modules(pid);
  for (auto& m : modules)
    if (!object.empty() && base_name(m.path) == object)
      if (auto v = module_symbol(m, name)) return v;
  for (auto& m : modules)
    if (object.empty() || base_name(m.path) != object)
      if (auto v = module_symbol(m, name)) return v;
  return std::nullopt;
}

}  // namespace dbgstub

// ---------------------------------------------------------------------------
// proc_service: what libthread_db calls back. Exported from the dbgstub
// executable (proc-service.list) so that the dlopen'ed library finds them.

extern "C" {

ps_err_e ps_pdread(ps_prochandle* ph, psaddr_t addr, void* buf, size_t size) {
  return ph->read(reinterpret_cast<uintptr_t>(addr), buf, size) ? PS_OK : PS_ERR;
}

ps_err_e ps_pdwrite(ps_prochandle* ph, psaddr_t addr, const void* buf, size_t size) {
  return ph->write(reinterpret_cast<uintptr_t>(addr), buf, size) ? PS_OK : PS_ERR;
}

ps_err_e ps_ptread(ps_prochandle* ph, psaddr_t addr, void* buf, size_t size) { return ps_pdread(ph, addr, buf, size); }

ps_err_e ps_ptwrite(ps_prochandle* ph, psaddr_t addr, const void* buf, size_t size) {
  return ps_pdwrite(ph, addr, buf, size);
}

ps_err_e ps_lgetregs(ps_prochandle*, lwpid_t lwpid, prgregset_t regs) {
  return ptrace(PTRACE_GETREGS, lwpid, nullptr, regs) == 0 ? PS_OK : PS_ERR;
}

ps_err_e ps_lsetregs(ps_prochandle*, lwpid_t lwpid, const prgregset_t regs) {
  return ptrace(PTRACE_SETREGS, lwpid, nullptr, regs) == 0 ? PS_OK : PS_ERR;
}

ps_err_e ps_lgetfpregs(ps_prochandle*, lwpid_t lwpid, prfpregset_t* regs) {
  return ptrace(PTRACE_GETFPREGS, lwpid, nullptr, regs) == 0 ? PS_OK : PS_ERR;
}

ps_err_e ps_lsetfpregs(ps_prochandle*, lwpid_t lwpid, const prfpregset_t* regs) {
  return ptrace(PTRACE_SETFPREGS, lwpid, nullptr, regs) == 0 ? PS_OK : PS_ERR;
}

pid_t ps_getpid(ps_prochandle* ph) { return ph->pid; }

// x86-64: the thread pointer is fs_base (idx FS), as gdbserver's.
ps_err_e ps_get_thread_area(ps_prochandle*, lwpid_t lwpid, int idx, psaddr_t* base) {
  std::size_t off;
  switch (idx) {
    case FS: off = offsetof(struct user_regs_struct, fs_base); break;
    case GS: off = offsetof(struct user_regs_struct, gs_base); break;
    default: return PS_BADADDR;
  }
  errno = 0;
  long v = ptrace(PTRACE_PEEKUSER, lwpid, off, nullptr);
  if (errno) return PS_ERR;
  *base = reinterpret_cast<psaddr_t>(static_cast<uintptr_t>(v));
  return PS_OK;
}

ps_err_e ps_pglobal_lookup(ps_prochandle* ph, const char* object, const char* name, psaddr_t* addr) {
  auto v = dbgstub::lookup_process_symbol(ph->pid, object ? object : "", name);
  if (!v) return PS_NOSYM;
  *addr = reinterpret_cast<psaddr_t>(static_cast<uintptr_t>(*v));
  return PS_OK;
}

}  // extern "C"
