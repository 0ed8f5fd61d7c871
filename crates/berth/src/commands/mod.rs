//! One file per verb family; each loads what it needs, calls the library
//! and prints. `dispatch` returns the process exit status.

mod copy;
mod export;
mod generate;
mod images;
mod import;
mod login;
mod machines;
mod mount;
mod network;
mod nspawn;
mod pull;
mod run;
mod running;
mod settings;
mod units;

use crate::cli::{Cli, Command};
use anyhow::{Context, Result};
use berth_store::Store;

pub fn open_store(cli: &Cli) -> Result<Store> {
    Store::open(&cli.root).with_context(|| format!("cannot open the store at {}", cli.root.display()))
}

pub fn dispatch(cli: Cli) -> Result<i32> {
    // Running machines are found under the state directory of this store.
    berth_runtime::machine::use_store(&cli.root);
    match &cli.command {
        Command::Pull(a) => pull::run(&cli, a),
        Command::Images(a) => images::list(&cli, a.json),
        Command::Inspect(a) => images::inspect(&cli, &a.name, a.json),
        Command::Rmi(a) => images::rmi(&cli, &a.names, a.force),
        Command::Tag { src, dst } => images::tag(&cli, src, dst),
        Command::Gc(a) => images::gc(&cli, a.json),
        Command::Fsck(a) => images::fsck(&cli, a.json),
        Command::Mount { image, dir } => mount::mount(&cli, image, dir),
        Command::Unmount { dir } => mount::unmount(dir),
        Command::Run(a) => run::run(&cli, a),
        Command::Import(a) => import::run(&cli, a),
        Command::Bootstrap(a) => machines::bootstrap(&cli, a),
        Command::Push(a) => pull::push(&cli, a),
        Command::Export { name, file, format, compress } => {
            export::export(&cli, name, file, format.as_deref(), compress.as_deref())
        }
        Command::Commit { machine, image } => export::commit(&cli, machine, image),
        Command::Start { name, foreground } => running::start(&cli, name, *foreground),
        Command::Ps(a) => running::ps(a.json),
        Command::Status { name } => running::status(&cli, name),
        Command::Shell { name, user, command } => running::shell(&cli, name, user.clone(), command),
        Command::Exec { name, tty, user, setenv, command } => {
            running::exec(&cli, name, *tty, user.clone(), setenv, command)
        }
        Command::Stop { name, timeout } => running::stop(&cli, name, *timeout),
        Command::Kill { name, signal } => running::kill(&cli, name, signal),
        Command::Terminate { name } => running::terminate(&cli, name),
        Command::Logs { name, follow } => running::logs(&cli, name, *follow),
        Command::Enable { name } => units::enable(&cli, name),
        Command::Disable { name } => units::disable(&cli, name),
        Command::Create { image, name, options, command } => machines::create(&cli, image, name, options, command),
        Command::Machines(a) => machines::list(&cli, a.json),
        Command::Clone { src, dst } => machines::clone(&cli, src, dst),
        Command::Rename { old, new } => machines::rename(&cli, old, new),
        Command::Network(c) => network::run(&cli, c),
        Command::Rm { names } => machines::rm(&cli, names),
        Command::Cp { src, dst, archive } => copy::cp(&cli, src, dst, *archive),
        Command::Bind { name, src, dst, read_only, mkdir } => copy::bind(name, src, dst.as_deref(), *read_only, *mkdir),
        Command::ReadOnly { name, value } => machines::read_only(&cli, name, *value),
        Command::Login(a) => login::login(a),
        Command::Logout(a) => login::logout(a),
        Command::Completions { shell } => generate::completions(*shell),
        Command::GenerateMan { dir } => generate::man(dir),
    }
}
