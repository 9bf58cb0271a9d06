// `crescent cluster up`: a whole prefill/decode cluster on this machine in
// one command (docs/cluster.md): etcd (Debian's binary, data in the work
// folder), the KV store's master, N prefill and M decode instances (the
// prefill instances' DRAM tiers are the store's segments) and the front with
// its Conductor, on free local ports. It prints the front's URL and every
// process's log, restarts a process that dies (the same command; an instance
// comes back as a new instance: another port, another cache epoch), and
// stops everything on SIGINT/SIGTERM. Every child dies with it, even when it
// is killed with -9 (ChildProcess's die_with_parent): no orphans.
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/logging.h"
#include "cli/cli_child_process.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "server/model_source.h"

namespace crescent::cli {
namespace {

struct ClusterOptions {
  server::ModelSource model;
  int prefill = 1, decode = 1;
  std::string store_dram = "256M";
  std::string kv_cache = "256M";
  std::string policy = "global-cache";
  double ttft_slo = 0, tbt_slo = 0;
  std::string profile;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string work_dir;
  int64_t instance_timeout_ms = 5000;
  int64_t max_num_seqs = 64;
  bool restart = true;
  std::vector<std::string> serve_args;  // passed on to every instance
};

// One supervised process: how to start it again, and what it is.
struct Member {
  std::string name;  // "etcd", "store-master", "prefill-0", ..., "front"
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string log;
  std::unique_ptr<ChildProcess> proc;
  int restarts = 0;
  std::chrono::steady_clock::time_point died{};
  bool down = false;
  void Start(bool append) { proc = std::make_unique<ChildProcess>(argv, log, env, /*die_with_parent=*/true, append); }
};

void Say(const std::string& line) {
  fmt::print("crescent cluster: {}\n", line);
  std::fflush(stdout);
}

void Up(const ClusterOptions& o) {
  if (o.prefill < 1 || o.decode < 1) throw CommandError("cluster up needs --prefill >= 1 and --decode >= 1");
  const uint64_t store_dram = ValueOrThrow(ParseSize(o.store_dram));
  ValueOrThrow(ParseSize(o.kv_cache));
  BlockTerminationSignals();
  SetWaitInterrupt([] {  // Ctrl-C while it starts: stop what started
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1;
  });
  std::string work = o.work_dir;
  if (work.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "crescent-cluster-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw CommandError("cannot make a work folder under /tmp");
    work = tmpl;
  }
  std::filesystem::create_directories(work);
  // The model once, here: N instances must not write one dummy model at once.
  const std::string model = ValueOrThrow(server::ResolveModelDir(o.model));
  Say(fmt::format("model {}, work folder {}", model, work));

  std::vector<std::unique_ptr<Member>> members;
  auto add = [&](std::string name, std::vector<std::string> argv, std::vector<std::string> env = {}) -> Member& {
    auto m = std::make_unique<Member>();
    m->name = std::move(name);
    m->argv = std::move(argv);
    m->env = std::move(env);
    m->log = work + "/" + m->name + ".log";
    members.push_back(std::move(m));
    Member& r = *members.back();
    r.Start(false);
    return r;
  };
  // From here on, a failure stops what started (the members' destructors, last first).
  // The front first, then the instances, the master, etcd: each group told
  // at once and given 10 s together, then killed.
  auto stop_all = [&] {
    auto group = [](const std::string& name) {
      return name == "front" ? 0 : name == "store-master" ? 2 : name == "etcd" ? 3 : 1;
    };
    for (int g = 0; g < 4; ++g) {
      for (auto& m : members) {
        if (group(m->name) == g && m->proc) m->proc->Terminate();
      }
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      for (auto& m : members) {
        if (group(m->name) != g || !m->proc) continue;
        const double left = std::chrono::duration<double>(end - std::chrono::steady_clock::now()).count();
        m->proc->Stop(std::max(left, 0.0));
      }
    }
  };
  try {
    const int etcd_client = FreeLocalPort(), etcd_peer = FreeLocalPort();
    const std::string etcd = fmt::format("127.0.0.1:{}", etcd_client);
    Member& e = add("etcd", {"etcd", "--name", "crescent", "--data-dir", work + "/etcd-data", "--listen-client-urls",
                             "http://" + etcd, "--advertise-client-urls", "http://" + etcd, "--listen-peer-urls",
                             fmt::format("http://127.0.0.1:{}", etcd_peer), "--initial-advertise-peer-urls",
                             fmt::format("http://127.0.0.1:{}", etcd_peer), "--initial-cluster",
                             fmt::format("crescent=http://127.0.0.1:{}", etcd_peer)});
    e.proc->WaitListening(etcd_client, 30);
    Say(fmt::format("etcd on {} (log {})", etcd, e.log));

    const std::string master = fmt::format("127.0.0.1:{}", FreeLocalPort());
    Member& m = add("store-master", {"", "store-master", "--listen", master});
    m.proc->WaitForLog("store-master: serving", 30);
    Say(fmt::format("store master on {} (log {})", master, m.log));

    const std::string per_prefill = std::to_string(store_dram / static_cast<uint64_t>(o.prefill));
    auto instance = [&](const std::string& role, int i) -> Member& {
      std::vector<std::string> argv{"", "serve", "--model", model, "--role", role, "--host", "127.0.0.1", "--port",
                                    "0", "--instance-listen", "127.0.0.1:0", "--etcd", etcd, "--store-master",
                                    master, "--kv-offload-dram-bytes", role == "prefill" ? per_prefill : "0",
                                    "--kv-cache-bytes", o.kv_cache, "--max-num-seqs", std::to_string(o.max_num_seqs)};
      argv.insert(argv.end(), o.serve_args.begin(), o.serve_args.end());
      return add(fmt::format("{}-{}", role, i), argv, {"OMP_WAIT_POLICY=PASSIVE"});
    };
    std::vector<Member*> instances;
    for (int i = 0; i < o.prefill; ++i) instances.push_back(&instance("prefill", i));
    for (int i = 0; i < o.decode; ++i) instances.push_back(&instance("decode", i));
    for (Member* i : instances) {
      const std::string port = i->proc->WaitForLog(R"(ready in [\d.]+ s on http://[\d.]+:(\d+))", 300);
      const std::string kv = i->proc->WaitForLog(R"(KV service on ([\d.]+:\d+))", 5);
      Say(fmt::format("{} on http://127.0.0.1:{} (KV service {}, log {})", i->name, port, kv, i->log));
    }

    const int front_port = o.port == 0 ? FreeLocalPort() : o.port;  // fixed: a restarted front keeps its URL
    std::vector<std::string> fa{"", "conductor", "--model", model, "--host", o.host, "--port",
                                std::to_string(front_port), "--etcd", etcd, "--store-master", master, "--policy",
                                o.policy, "--instance-timeout-ms", std::to_string(o.instance_timeout_ms)};
    if (o.ttft_slo > 0) fa.insert(fa.end(), {"--ttft-slo", fmt::format("{}", o.ttft_slo)});
    if (o.tbt_slo > 0) fa.insert(fa.end(), {"--tbt-slo", fmt::format("{}", o.tbt_slo)});
    if (!o.profile.empty()) fa.insert(fa.end(), {"--profile", o.profile});
    Member& f = add("front", fa);
    f.proc->WaitHealthy(front_port, 60);
    Say(fmt::format("front (policy {}) log {}", o.policy, f.log));
    Say(fmt::format("ready: http://{}:{}/v1 (Ctrl-C stops everything)", o.host, front_port));
  } catch (...) {
    stop_all();
    throw;
  }

  // Supervise until SIGINT/SIGTERM: a member that died is started again after 1 s.
  const int sig = WaitForTermination([&] {
    const auto now = std::chrono::steady_clock::now();
    for (auto& mp : members) {
      Member& m = *mp;
      if (!m.down && m.proc->Alive()) continue;
      if (!m.down) {
        m.down = true;
        m.died = now;
        Say(fmt::format("{} {}{}", m.name, m.proc->exit_status(), o.restart ? "; restarting it in 1 s" : ""));
        continue;
      }
      if (!o.restart || now - m.died < std::chrono::seconds(1)) continue;
      try {
        m.Start(true);
        m.down = false;
        ++m.restarts;
        Say(fmt::format("{} restarted (pid {}, restart {})", m.name, m.proc->pid(), m.restarts));
      } catch (const CommandError& err) {
        m.died = now;
        Say(fmt::format("{} cannot be restarted: {}", m.name, err.what()));
      }
    }
  });
  Say(fmt::format("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM"));
  stop_all();
  Say("stopped");
}

}  // namespace

void RegisterCluster(CLI::App& app) {
  auto o = std::make_shared<ClusterOptions>();
  CLI::App* cluster = app.add_subcommand("cluster", "A prefill/decode cluster on this machine");
  cluster->require_subcommand(1);
  CLI::App* up = cluster->add_subcommand(
      "up", "Start etcd, the store master, prefill and decode instances and the front; Ctrl-C stops them all");
  up->add_option("--model", o->model.spec, "Model folder, or dummy:<preset>")->required();
  up->add_option("--prefill", o->prefill, "Prefill instances")->check(CLI::Range(1, 64))->capture_default_str();
  up->add_option("--decode", o->decode, "Decode instances")->check(CLI::Range(1, 64))->capture_default_str();
  up->add_option("--store-dram-bytes", o->store_dram, "The KV store's DRAM, split over the prefill instances")
      ->capture_default_str();
  up->add_option("--kv-cache-bytes", o->kv_cache, "Each instance's KV cache")->capture_default_str();
  up->add_option("--max-num-seqs", o->max_num_seqs, "Each instance's running sequences at most")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->capture_default_str();
  up->add_option("--policy", o->policy, "The Conductor's policy: global-cache, local-cache, least-loaded, random")
      ->check(CLI::IsMember({"global-cache", "local-cache", "least-loaded", "random"}))
      ->capture_default_str();
  up->add_option("--ttft-slo", o->ttft_slo, "Seconds; admission refuses (429) past it")->check(CLI::Range(0.0, 3600.0));
  up->add_option("--tbt-slo", o->tbt_slo, "Seconds; admission refuses (429) past it")->check(CLI::Range(0.0, 60.0));
  up->add_option("--profile", o->profile, "Start the Conductor's estimators from this profile")
      ->check(CLI::ExistingFile);
  up->add_option("--host", o->host, "The front's address")->capture_default_str();
  up->add_option("--port", o->port, "The front's port (0: a free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  up->add_option("--work-dir", o->work_dir, "Logs and etcd's data (default: a new folder under /tmp)");
  up->add_option("--instance-timeout-ms", o->instance_timeout_ms, "The front skips an instance silent this long")
      ->check(CLI::Range(int64_t{200}, int64_t{3'600'000}))
      ->capture_default_str();
  up->add_flag("!--no-restart", o->restart, "Do not restart a process that dies");
  up->add_option("--serve-arg", o->serve_args, "An extra `crescent serve` argument for every instance (repeatable)")
      ->allow_extra_args(false);
  up->add_option("--tokenizer-dir", o->model.tokenizer_dir, "Tokenizer folder for dummy models");
  up->add_option("--dummy-dir", o->model.dummy_dir, "Folder for the dummy model");
  up->callback([o] { Up(*o); });
}

}  // namespace crescent::cli
