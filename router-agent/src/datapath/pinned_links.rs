//! The interfaces the pinned datapath is attached to, by the agent's ifindex: from the
//! pinned XDP links (`link_<ifname>`), whose name is the interface's in the agent's network
//! namespace and whose kernel record holds its ifindex there. `show` run in another
//! namespace then names interfaces as the agent sees them, not by its own ifindex table.

use std::{
    collections::BTreeMap,
    ffi::CString,
    os::{fd::FromRawFd, unix::ffi::OsStrExt},
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_TYPE_XDP: u32 = 6;

/// ifindex (in the agent's namespace) -> interface name, for every pinned XDP link.
pub fn attached_interfaces(pin_dir: &Path) -> BTreeMap<u32, String> {
    let Ok(entries) = std::fs::read_dir(pin_dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry
                .file_name()
                .to_str()?
                .strip_prefix("link_")?
                .to_owned();
            Some((xdp_link_ifindex(&entry.path())?, name))
        })
        .collect()
}

/// The ifindex of the pinned XDP link at `path` (None if it is not one).
fn xdp_link_ifindex(path: &Path) -> Option<u32> {
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut get = ObjGet {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    // SAFETY: bpf(2) with its attr (the kernel zero-extends a shorter one); the path outlives
    // the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &mut get as *mut ObjGet,
            std::mem::size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor bpf(2) just returned, owned here.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // struct bpf_link_info: type, id, prog_id, then (8-aligned) the union; xdp.ifindex first.
    let mut info = [0u32; 16];
    let mut by_fd = InfoByFd {
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: bpf(2) filling at most `info_len` bytes of `info`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut by_fd as *mut InfoByFd,
            std::mem::size_of::<InfoByFd>(),
        )
    };
    (rc == 0 && info[0] == BPF_LINK_TYPE_XDP && info[4] != 0).then_some(info[4])
}
