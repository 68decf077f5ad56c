// The C++ simulation harness of a generated accelerator top (imcflow.verif.engine).
//
// Built once per top with `verilator --cc --exe` together with "ports.h", which engine.py writes
// from the top's port list (the top's class, the widths of its streams, and a function per stream
// that packs a port into 32-bit words). It runs the whole stimulus inside the compiled model, no
// per-cycle Python:
//
// - reset: rst high for 2 rising edges, then cycle 0 is the first cycle after reset release (rst
//   comes from a counter in the Verilog wrapper around the top, engine.py's WRAPPER: driven from
//   here, it would be a top-level input, which makes Verilator evaluate every register's reset
//   logic in each eval());
// - s_axis: the images' pixels back to back (channel c in tdata[8c+7:8c], tlast on each image's
//   last pixel). At the start of cycle c, a pending beat raises tvalid iff the input's stall mask
//   is clear in c; tvalid and tdata then hold until the handshake;
// - m_axis: tready in cycle c is the complement of the output's stall mask;
// - stall masks: imcflow.verif.patterns.stall_mask (counter-based SplitMix64), bit for bit;
// - every cycle, the AXI4-Stream rules on m_axis (tvalid held until tready, tdata and tlast stable
//   while stalled, tvalid low in reset): a violation stops the run and names its cycle;
// - a watchdog stops the run when no output handshake happened for `watchdog` cycles while
//   outputs are missing, and records the status port; `timeout` bounds the whole run.
//
// Command line: key=value pairs (below) and Verilator's +verilator+... options. Results go to a
// directory: in.bin (uint64 cycle of every input handshake), out.bin and tap<k>.bin (records of
// uint32 words: cycle low, cycle high, payload words little-endian; tlast on top of tdata) and
// summary.json (cycles, the wall and CPU seconds of the loop after reset, beat counts, the
// watchdog's trip, the first violation). With tracing compiled in (HARNESS_TRACE) and trace=PATH,
// a VCD of cycles [trace_from, trace_to] is written. Progress lines "progress <output beats>" go to stderr.
// masks=N writes both stall masks of cycles 0..N-1 (one byte per cycle) to masks.bin instead.

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "verilated.h"
#if HARNESS_TRACE
#include "verilated_vcd_c.h"
#endif

#include "ports.h"

namespace {

// imcflow.verif.patterns.stall_mask, one cycle at a time.
struct StallMask {
    uint64_t base;
    uint64_t threshold;  // floor(probability * 2**53), computed by the caller

    StallMask(uint64_t seed, uint64_t stream, uint64_t threshold_)
        : base(seed ^ (stream * 0xD1B54A32D192ED03ULL)), threshold(threshold_) {}

    bool operator()(uint64_t cycle) const {
        if (threshold == 0) return false;
        uint64_t z = base + (cycle + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        return (z >> 11) < threshold;
    }
};

// Records of (cycle, payload words) in one binary file, written in large blocks (a record per
// fwrite would lock the stream twice per record: 2 % of a digits run).
struct Records {
    FILE* file = nullptr;
    uint64_t count = 0;
    std::vector<uint32_t> buffer;

    void open(const std::string& path) {
        file = std::fopen(path.c_str(), "wb");
        if (!file) {
            std::fprintf(stderr, "harness: cannot write %s\n", path.c_str());
            std::exit(3);
        }
        buffer.reserve(BLOCK + 64);
    }
    void put(uint64_t cycle, const uint32_t* words, int n) {
        buffer.push_back(static_cast<uint32_t>(cycle));
        buffer.push_back(static_cast<uint32_t>(cycle >> 32));
        buffer.insert(buffer.end(), words, words + n);
        ++count;
        if (buffer.size() >= BLOCK) flush();
    }
    void flush() {
        std::fwrite(buffer.data(), sizeof(uint32_t), buffer.size(), file);
        buffer.clear();
    }
    void close() {
        if (!file) return;
        flush();
        std::fclose(file);
        file = nullptr;
    }

    static constexpr size_t BLOCK = 1 << 16;  // words
};

std::map<std::string, std::string> parse(int argc, char** argv) {
    std::map<std::string, std::string> args;
    for (int i = 1; i < argc; ++i) {
        const char* eq = std::strchr(argv[i], '=');
        if (argv[i][0] != '+' && eq) args[std::string(argv[i], eq - argv[i])] = eq + 1;
    }
    return args;
}

uint64_t number(const std::map<std::string, std::string>& args, const char* key, uint64_t fallback) {
    auto it = args.find(key);
    return it == args.end() ? fallback : std::strtoull(it->second.c_str(), nullptr, 10);
}

int64_t signed_number(const std::map<std::string, std::string>& args, const char* key, int64_t fallback) {
    auto it = args.find(key);
    return it == args.end() ? fallback : std::strtoll(it->second.c_str(), nullptr, 10);
}

std::string hex(const uint32_t* words, int n) {
    std::string s;
    char buf[9];
    for (int i = n - 1; i >= 0; --i) {
        std::snprintf(buf, sizeof buf, "%08" PRIx32, words[i]);
        s += buf;
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = parse(argc, argv);
    const std::string results = args.at("results");
    const uint64_t images = number(args, "images", 0), pixels = number(args, "pixels", 0);
    const uint64_t out_beats = number(args, "out_beats", 0);
    const uint64_t watchdog = number(args, "watchdog", 1000000), timeout = number(args, "timeout", 0);
    const uint64_t drain = number(args, "drain", 200), seed = number(args, "seed", 0);
    const StallMask idle(seed, 1, number(args, "idle", 0));
    const StallMask backpressure(seed, 2, number(args, "backpressure", 0));
    const uint64_t progress_every = number(args, "progress", 0);

    if (args.count("masks")) {  // masks=N: write both stall masks of cycles 0..N-1 and stop
        FILE* f = std::fopen((results + "/masks.bin").c_str(), "wb");
        if (!f) return 3;
        for (const StallMask* mask : {&idle, &backpressure})
            for (uint64_t c = 0, n = number(args, "masks", 0); c < n; ++c) std::fputc((*mask)(c), f);
        std::fclose(f);
        return 0;
    }

    // the stimulus: images * pixels beats of IN_LANES bytes
    std::vector<uint8_t> stimulus(images * pixels * IN_LANES);
    {
        FILE* f = std::fopen(args.at("stimulus").c_str(), "rb");
        if (!f || std::fread(stimulus.data(), 1, stimulus.size(), f) != stimulus.size()) {
            std::fprintf(stderr, "harness: cannot read %zu bytes of stimulus from %s\n",
                         stimulus.size(), args.at("stimulus").c_str());
            return 3;
        }
        std::fclose(f);
    }

    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    auto top = std::make_unique<Top>(context.get());
#if HARNESS_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
    const int64_t trace_from = signed_number(args, "trace_from", -2);
    const int64_t trace_to = signed_number(args, "trace_to", INT64_MAX);
    if (args.count("trace")) {
        context->traceEverOn(true);
        vcd = std::make_unique<VerilatedVcdC>();
        top->trace(vcd.get(), HARNESS_TRACE_DEPTH);
    }
    // Cycle c (from -2, the first reset cycle) starts at 10 (c + 2) ns; its rising edge is at +5.
    auto dump = [&](int64_t cycle, int phase) {
        if (!vcd) return;
        if (cycle < trace_from || cycle > trace_to) return;
        if (!vcd->isOpen()) vcd->open(args.at("trace").c_str());
        vcd->dump(static_cast<uint64_t>(10 * (cycle + 2) + 5 * phase));
    };
#else
    auto dump = [](int64_t, int) {};
#endif

    Records in, out, taps[TAP_COUNT > 0 ? TAP_COUNT : 1];
    in.open(results + "/in.bin");
    out.open(results + "/out.bin");
    for (int k = 0; k < TAP_COUNT; ++k) taps[k].open(results + "/tap" + std::to_string(k) + ".bin");

    std::string violation;
    int64_t violation_cycle = -1;

    // reset: two rising edges with rst high (the wrapper's counter), tvalid and tready low
    top->clk = 0;
    top->s_axis_tvalid = 0;
    top->m_axis_tready = 0;
    top->eval();
    for (int64_t cycle = -2; cycle < 0; ++cycle) {
        top->clk = 0;
        top->eval();
        if (cycle == -1 && top->m_axis_tvalid) {
            violation = "m_axis_tvalid high in reset";
            violation_cycle = cycle;
        }
        dump(cycle, 0);
        top->clk = 1;
        top->eval();
        dump(cycle, 1);
    }

    const uint64_t in_beats = images * pixels;
    uint64_t next = 0;                 // index of the next input beat
    bool offering = false;             // s_axis_tvalid high with beat `next`
    uint32_t in_words[IN_WORDS];
    uint32_t out_words[OUT_WORDS], held[OUT_WORDS];
    bool stalled = false;              // an output beat was offered and not taken last cycle
    uint64_t last_out = 0, drained = 0, cycle = 0;
    bool timed_out = false, tripped = false;
    uint64_t trip_cycle = 0, trip_idle = 0;
    uint32_t status[STATUS_WORDS];
    const auto started = std::chrono::steady_clock::now();
    const std::clock_t cpu_started = std::clock();

    while (violation.empty()) {
        // the start of the cycle: drive the inputs
        top->clk = 0;
        if (!offering && next < in_beats && !idle(cycle)) {
            std::memset(in_words, 0, sizeof in_words);
            std::memcpy(in_words, &stimulus[next * IN_LANES], IN_LANES);
            set_in(top.get(), in_words, (next + 1) % pixels == 0);
            top->s_axis_tvalid = 1;
            offering = true;
        } else if (!offering) {
            top->s_axis_tvalid = 0;
        }
        const bool ready = !backpressure(cycle);
        top->m_axis_tready = ready;
        top->eval();
        dump(cycle, 0);

        // the settled values: handshakes at the coming rising edge, and the stream rules
        if (offering && top->s_axis_tready) {
            in.put(cycle, nullptr, 0);
            offering = false;
            ++next;
        }
        const bool valid = top->m_axis_tvalid;
        if (valid || stalled) get_out(top.get(), out_words);
        if (stalled) {
            if (!valid) {
                violation = "m_axis_tvalid dropped before the handshake";
            } else if (std::memcmp(out_words, held, sizeof held) != 0) {
                violation = "m_axis_tdata or m_axis_tlast changed while stalled";
            }
            if (!violation.empty()) {
                violation_cycle = static_cast<int64_t>(cycle);
                break;
            }
        }
        stalled = valid && !ready;
        if (stalled) std::memcpy(held, out_words, sizeof held);
        if (valid && ready) {
            out.put(cycle, out_words, OUT_WORDS);
            last_out = cycle;
            if (progress_every && out.count % progress_every == 0) {
                std::fprintf(stderr, "progress %" PRIu64 "\n", out.count);
                std::fflush(stderr);
            }
        }
        sample_taps(top.get(), cycle, taps);

        if (out.count >= out_beats) {
            if (drained++ == drain) break;
        } else if (cycle - last_out > watchdog) {
            tripped = true;
            trip_cycle = cycle;
            trip_idle = cycle - last_out;
            get_status(top.get(), status);
            break;
        }
        if (timeout && cycle >= timeout) {
            timed_out = true;
            break;
        }
        // the rising edge that ends the cycle
        top->clk = 1;
        top->eval();
        dump(cycle, 1);
        ++cycle;
    }
    // the CPU interval inside the wall one: cpu <= wall for this single-threaded process
    const double cpu = static_cast<double>(std::clock() - cpu_started) / CLOCKS_PER_SEC;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    top->final();
#if HARNESS_TRACE
    if (vcd && vcd->isOpen()) vcd->close();
#endif
    in.close();
    out.close();
    for (int k = 0; k < TAP_COUNT; ++k) taps[k].close();

    FILE* f = std::fopen((results + "/summary.json").c_str(), "w");
    if (!f) return 3;
    std::fprintf(f, "{\"cycles\": %" PRIu64 ", \"wall_seconds\": %.6f, \"cpu_seconds\": %.6f, "
                    "\"in_beats\": %" PRIu64 ", \"out_beats\": %" PRIu64 ", \"timeout\": %s, \"taps\": [",
                 cycle + 1, wall, cpu, in.count, out.count, timed_out ? "true" : "false");
    for (int k = 0; k < TAP_COUNT; ++k) std::fprintf(f, "%s%" PRIu64, k ? ", " : "", taps[k].count);
    std::fprintf(f, "], \"watchdog\": ");
    if (tripped) {
        std::fprintf(f, "{\"cycle\": %" PRIu64 ", \"idle_cycles\": %" PRIu64 ", \"status\": \"%s\"}",
                     trip_cycle, trip_idle, hex(status, STATUS_WORDS).c_str());
    } else {
        std::fprintf(f, "null");
    }
    std::fprintf(f, ", \"violation\": ");
    if (!violation.empty()) {
        std::fprintf(f, "{\"cycle\": %" PRId64 ", \"message\": \"%s\"}", violation_cycle, violation.c_str());
    } else {
        std::fprintf(f, "null");
    }
    std::fprintf(f, "}\n");
    std::fclose(f);
    return 0;
}
