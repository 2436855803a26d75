// Indirect-access prefetching for Spate's LLVM tier (see tiers/llvm/src/prefetch.rs).
//
// Hardware prefetchers follow strided streams but not accesses whose address comes from data,
// such as `out[count[keys[i]]]` in a counting sort or `x[col[j]]` in a sparse product. For every
// such load or store in an innermost loop, where the address depends (through integer arithmetic
// and further loads) on a load that walks linear memory with a constant stride, this pass
// recomputes the address a fixed number of iterations ahead and prefetches it. The look-ahead
// loads are clamped into the memory's length, read once before the loop (memories only grow),
// so they can neither fault nor read outside the linear memory whatever the data; prefetches
// never fault. The loop's own code is
// untouched: the pass only adds instructions.
//
// It runs after the optimization pipeline and before code generation, on IR from Spate's own
// translator, which marks the load of each linear memory's base address with the metadata kind
// `spate.memory.base`. That load reads the `VMMemory` record, whose current length in bytes
// (an i64) sits `length_offset - base_offset` bytes after the base field.

#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Analysis/AssumptionCache.h"
#include "llvm/Analysis/LoopInfo.h"
#include "llvm/Analysis/ScalarEvolution.h"
#include "llvm/Analysis/ScalarEvolutionExpressions.h"
#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/Analysis/ValueTracking.h"
#include "llvm/IR/Dominators.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/Module.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/Utils/Local.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

using namespace llvm;

namespace {

/// The metadata kind the translator puts on the load of a linear memory's base address
/// (`spate.memory.base`), as passed to the current call on this thread (compile threads run the
/// pass concurrently, each on its own module).
thread_local const char *memoryBaseKind = nullptr;

/// How far ahead the pass looks, in bytes of the strided stream that feeds the address
/// (two cache lines), and the bounds on the distance in loop iterations.
const int64_t LOOKAHEAD_BYTES = 128;
const int64_t MIN_DISTANCE = 4;
const int64_t MAX_DISTANCE = 64;

/// Limits on what one address may depend on: instructions of the loop, and loads among them.
const unsigned MAX_SLICE = 24;
const unsigned MAX_LOADS = 3;

/// The load of a linear memory's base address that `ptr` is based on, if any.
LoadInst *memoryBaseOf(Value *ptr) {
  auto *base = dyn_cast<LoadInst>(getUnderlyingObject(ptr));
  if (base && base->getMetadata(memoryBaseKind))
    return base;
  return nullptr;
}

/// The constant step per iteration of `L` of the affine recurrence `s`, if it is one.
std::optional<APInt> stepOf(const SCEV *s, Loop &L, ScalarEvolution &SE) {
  auto *rec = dyn_cast<SCEVAddRecExpr>(s);
  if (!rec || rec->getLoop() != &L || !rec->isAffine())
    return std::nullopt;
  auto *step = dyn_cast<SCEVConstant>(rec->getStepRecurrence(SE));
  if (!step)
    return std::nullopt;
  return step->getAPInt();
}

/// The bytes per iteration of `L` by which `ptr`, an address in a linear memory, moves, if
/// it moves by a constant: either its SCEV is an affine recurrence of `L`, or its offset from
/// the memory's base is one up to casts and constant terms (`base + zext({a,+,4}) + 16`: the
/// 32-bit address may wrap as far as SCEV knows, which does not matter for a stride).
std::optional<APInt> strideOf(Value *ptr, Loop &L, ScalarEvolution &SE) {
  if (!SE.isSCEVable(ptr->getType()))
    return std::nullopt;
  const SCEV *s = SE.getSCEV(ptr);
  if (auto step = stepOf(s, L, SE))
    return step;
  LoadInst *base = memoryBaseOf(ptr);
  if (!base)
    return std::nullopt;
  s = SE.getMinusSCEV(s, SE.getSCEV(base));
  for (unsigned depth = 0; depth < 4; depth++) {
    if (auto *cast = dyn_cast<SCEVCastExpr>(s)) {
      s = cast->getOperand(0);
    } else if (auto *add = dyn_cast<SCEVAddExpr>(s)) {
      const SCEV *variable = nullptr;
      for (const SCEV *op : add->operands()) {
        if (isa<SCEVConstant>(op))
          continue;
        if (variable)
          return std::nullopt;
        variable = op;
      }
      if (!variable)
        return std::nullopt;
      s = variable;
    } else {
      break;
    }
  }
  return stepOf(s, L, SE);
}

/// An access whose address can be recomputed ahead: the loop instructions it depends on, in an
/// order where each comes after the ones it uses, and the induction variables they use with
/// their steps (read while SCEV still describes the loop: it is not kept up to date).
struct Candidate {
  Instruction *access;
  Value *pointer;
  bool isStore;
  SmallVector<Instruction *, 16> slice;
  SmallVector<std::pair<PHINode *, APInt>, 2> inductions;
  int64_t distance; // in iterations
};

/// Collects the instructions of loop `L` that `root` depends on, or fails.
class Slicer {
public:
  Slicer(Loop &L, ScalarEvolution &SE) : L(L), SE(SE) {}

  bool run(Value *root, Candidate &c) {
    if (!visit(root, c))
      return false;
    if (loads == 0 || streamStep == 0)
      return false;
    int64_t distance = LOOKAHEAD_BYTES / streamStep;
    if (distance < MIN_DISTANCE)
      distance = MIN_DISTANCE;
    if (distance > MAX_DISTANCE)
      distance = MAX_DISTANCE;
    c.distance = distance;
    return true;
  }

private:
  Loop &L;
  ScalarEvolution &SE;
  SmallPtrSet<Value *, 32> seen;
  unsigned loads = 0;
  int64_t streamStep = 0; // bytes per iteration of the first strided load found

  bool visit(Value *v, Candidate &c) {
    auto *inst = dyn_cast<Instruction>(v);
    if (!inst || !L.contains(inst))
      return true; // loop-invariant: used as it is
    if (!seen.insert(inst).second)
      return true;
    if (seen.size() > MAX_SLICE)
      return false;
    if (auto *phi = dyn_cast<PHINode>(inst)) {
      // Only induction variables of this loop, which the clone advances by their step.
      if (phi->getParent() != L.getHeader())
        return false;
      std::optional<APInt> step = stepOf(SE.getSCEV(phi), L, SE);
      if (!step)
        return false;
      c.inductions.emplace_back(phi, *step);
      return true;
    }
    if (auto *load = dyn_cast<LoadInst>(inst)) {
      if (!load->isSimple() || !load->getType()->isIntegerTy() ||
          !memoryBaseOf(load->getPointerOperand()) || ++loads > MAX_LOADS)
        return false;
      if (streamStep == 0) {
        if (auto step = strideOf(load->getPointerOperand(), L, SE)) {
          int64_t s = step->getSExtValue();
          streamStep = s < 0 ? -s : s;
        }
      }
      if (!visit(load->getPointerOperand(), c))
        return false;
      c.slice.push_back(inst);
      return true;
    }
    if (auto *bin = dyn_cast<BinaryOperator>(inst)) {
      if (!bin->getType()->isIntegerTy())
        return false; // floating-point or vector arithmetic: not an address computation
      switch (bin->getOpcode()) {
      case Instruction::UDiv:
      case Instruction::SDiv:
      case Instruction::URem:
      case Instruction::SRem:
        return false; // could divide by zero on a look-ahead value
      default:
        break;
      }
    } else if (!isa<CastInst>(inst) && !isa<GetElementPtrInst>(inst) && !isa<SelectInst>(inst) &&
               !isa<ICmpInst>(inst) && !isa<FreezeInst>(inst)) {
      return false;
    }
    if (isa<CastInst>(inst) && !isa<ZExtInst>(inst) && !isa<SExtInst>(inst) &&
        !isa<TruncInst>(inst))
      return false;
    for (Value *op : inst->operands())
      if (!visit(op, c))
        return false;
    c.slice.push_back(inst);
    return true;
  }
};

/// The clamp limits of one loop's look-ahead accesses: for each linear memory and access size,
/// the memory's length minus the size, computed once before the loop: at the end of its
/// preheader, or where it has none, of the header's immediate dominator (outside the loop, and
/// on every path into it).
///
/// A length read before the loop is sound for every iteration: memories only grow, so a length
/// read earlier is at most the current one, and an access clamped below it is inside the
/// memory (a memory that grew in the loop only makes the clamp stricter than it needs to be,
/// which costs a useless prefetch, never a fault). Even a memory empty before the loop is safe:
/// the limit is then 0, and a look-ahead load clamped to offset 0 copies a load the iteration
/// has already done, so the memory holds at least a page by then. Read in the loop instead, the
/// length has to be loaded again after each store to linear memory (which LLVM cannot tell from
/// a store to the `VMMemory` record), several instructions per access in a loop of a few.
class Limits {
public:
  /// `before`: the block outside the loop at whose end the limits go. `DT` tells whether a
  /// memory's base load is available there. The translator loads every base in the prologue,
  /// and the slicer declines an address built on a base loaded in the loop (a pointer load), so
  /// it always is; were it not, each clamp would read the length just before its access.
  Limits(Module &M, uint64_t lengthDelta, BasicBlock *before, DominatorTree &DT)
      : M(M), lengthDelta(lengthDelta), before(before), DT(DT) {}

  /// The highest offset in the memory that `base` loads the base of at which an access of
  /// `size` bytes is inside the memory, for code inserted at `B`.
  Value *last(IRBuilder<> &B, LoadInst *base, uint64_t size) {
    bool hoist = before && DT.dominates(base, before->getTerminator());
    if (!hoist)
      return limit(B, length(B, base), size);
    Value *&cached = lasts[{base, size}];
    if (!cached) {
      IRBuilder<> P(before->getTerminator());
      Value *&len = lengths[base];
      if (!len)
        len = length(P, base);
      cached = limit(P, len, size);
    }
    return cached;
  }

private:
  Module &M;
  uint64_t lengthDelta;
  BasicBlock *before;
  DominatorTree &DT;
  std::map<LoadInst *, Value *> lengths;
  std::map<std::pair<LoadInst *, uint64_t>, Value *> lasts;

  /// Loads the current length in bytes of the memory whose base `base` loads.
  Value *length(IRBuilder<> &B, LoadInst *base) {
    Type *i64 = Type::getInt64Ty(M.getContext());
    Type *byte = Type::getInt8Ty(M.getContext());
    Value *record =
        B.CreateGEP(byte, base->getPointerOperand(), ConstantInt::get(i64, lengthDelta));
    return B.CreateAlignedLoad(i64, record, Align(8));
  }

  /// `length - size`, saturating at 0 (an empty memory, or one smaller than the access).
  Value *limit(IRBuilder<> &B, Value *length, uint64_t size) {
    Type *i64 = Type::getInt64Ty(M.getContext());
    return B.CreateBinaryIntrinsic(Intrinsic::usub_sat, length, ConstantInt::get(i64, size));
  }
};

/// Emits the look-ahead code of the candidates of one block, sharing what they have in common:
/// `emit` adds each candidate's look-ahead loads and arithmetic just before its access, then
/// `finish` adds one prefetch per look-ahead address that no look-ahead load already reads.
class Emitter {
public:
  Emitter(Module &M, Limits &limits) : M(M), limits(limits) {}

  void emit(const Candidate &c) {
    IRBuilder<> B(c.access);
    for (Instruction *inst : c.slice) {
      if (clones.count(inst))
        continue;
      if (auto *load = dyn_cast<LoadInst>(inst)) {
        Value *ahead = remap(load->getPointerOperand());
        Value *ptr = clampInto(B, ahead, load->getPointerOperand(), load->getType());
        clones[inst] = B.CreateAlignedLoad(load->getType(), ptr, Align(1));
        loaded.insert(ahead);
        continue;
      }
      Instruction *copy = inst->clone();
      copy->dropPoisonGeneratingFlags();
      copy->dropUnknownNonDebugMetadata();
      for (Use &op : copy->operands())
        op.set(remap(op.get()));
      B.Insert(copy);
      clones[inst] = copy;
    }
    Value *ahead = remap(c.pointer);
    auto found = std::find_if(requests.begin(), requests.end(),
                              [&](const Request &r) { return r.ahead == ahead; });
    if (found == requests.end())
      requests.push_back(Request{ahead, c.pointer, c.access, c.isStore});
    else
      found->write |= c.isStore;
  }

  /// Adds the prefetches; returns how many.
  unsigned finish() {
    unsigned added = 0;
    Type *i32 = Type::getInt32Ty(M.getContext());
    for (const Request &r : requests) {
      if (loaded.count(r.ahead))
        continue; // a look-ahead load reads it already
      IRBuilder<> B(r.before);
      Value *ptr = clampInto(B, r.ahead, r.original, Type::getInt8Ty(M.getContext()));
      Function *prefetch = Intrinsic::getDeclaration(&M, Intrinsic::prefetch, {ptr->getType()});
      B.CreateCall(prefetch, {ptr, ConstantInt::get(i32, r.write ? 1 : 0),
                              ConstantInt::get(i32, 3), ConstantInt::get(i32, 1)});
      added++;
    }
    return added;
  }

  /// Sets the distance of the induction variables used by the candidates to come.
  void setDistance(int64_t d) {
    if (d != distance) {
      distance = d;
      clones.clear();
    }
  }

  /// Advances the induction variable `phi` by `distance` steps of `step`.
  void advance(PHINode *phi, const APInt &step) {
    if (clones.count(phi))
      return;
    IRBuilder<> B(phi->getParent(), phi->getParent()->getFirstInsertionPt());
    APInt by = step * APInt(step.getBitWidth(), static_cast<uint64_t>(distance), true);
    Value *ahead;
    if (phi->getType()->isPointerTy())
      ahead = B.CreateGEP(Type::getInt8Ty(M.getContext()), phi,
                          ConstantInt::get(M.getContext(), by.sextOrTrunc(64)));
    else
      ahead = B.CreateAdd(phi, ConstantInt::get(phi->getType(), by));
    clones[phi] = ahead;
  }

private:
  /// A look-ahead address to prefetch, before the first access that wanted it.
  struct Request {
    Value *ahead;
    Value *original;
    Instruction *before;
    bool write;
  };

  Module &M;
  Limits &limits;
  int64_t distance = 0;
  std::map<Value *, Value *> clones;
  SmallPtrSet<Value *, 8> loaded;
  SmallVector<Request, 8> requests;

  /// `v` as the look-ahead sees it: a clone, an advanced induction variable, or `v` itself
  /// (loop-invariant values, including the phis of outer loops).
  Value *remap(Value *v) {
    auto it = clones.find(v);
    return it == clones.end() ? v : it->second;
  }

  /// `ahead` (a pointer into the linear memory `original` is based on) moved, if need be, so
  /// that an access of `type` there stays inside the memory's current length.
  Value *clampInto(IRBuilder<> &B, Value *ahead, Value *original, Type *type) {
    LoadInst *base = memoryBaseOf(original);
    Type *i64 = Type::getInt64Ty(M.getContext());
    Type *byte = Type::getInt8Ty(M.getContext());
    uint64_t size = M.getDataLayout().getTypeStoreSize(type);
    // Frozen: a look-ahead value may be poison (a clone computes on values the loop never
    // sees), and the clamp must bound a defined offset for the load to be defined.
    Value *offset =
        B.CreateFreeze(B.CreateSub(B.CreatePtrToInt(ahead, i64), B.CreatePtrToInt(base, i64)));
    // Saturating (`Limits::last`) for a prefetch, whose access may be to a memory the slice's
    // loads did not touch (and so possibly empty); a clamped prefetch still stays in the
    // reservation.
    Value *inside = B.CreateBinaryIntrinsic(Intrinsic::umin, offset, limits.last(B, base, size));
    return B.CreateGEP(byte, base, inside);
  }
};

/// Adds the prefetches of innermost loop `L`; returns how many.
unsigned prefetchLoop(Loop &L, ScalarEvolution &SE, DominatorTree &DT, Module &M,
                      uint64_t lengthDelta) {
  SmallVector<Candidate, 8> candidates;
  for (BasicBlock *bb : L.blocks()) {
    for (Instruction &inst : *bb) {
      Value *ptr = getLoadStorePointerOperand(&inst);
      if (!ptr || inst.isVolatile() || inst.isAtomic()) // loads and stores that are simple
        continue;
      bool isStore = isa<StoreInst>(inst);
      if (!memoryBaseOf(ptr) || L.isLoopInvariant(ptr))
        continue;
      if (strideOf(ptr, L, SE))
        continue; // strided: the hardware prefetcher's business
      Candidate c{&inst, ptr, isStore, {}, {}, 0};
      Slicer slicer(L, SE);
      if (slicer.run(ptr, c))
        candidates.push_back(std::move(c));
    }
  }
  if (candidates.empty())
    return 0;
  BasicBlock *before = L.getLoopPreheader();
  if (!before)
    if (DomTreeNode *idom = DT.getNode(L.getHeader())->getIDom())
      before = idom->getBlock();
  Limits limits(M, lengthDelta, before, DT);
  // One emitter per block, in the order of the candidates (so the output does not depend on
  // where blocks sit in memory).
  std::vector<std::pair<BasicBlock *, std::unique_ptr<Emitter>>> emitters;
  for (const Candidate &c : candidates) {
    BasicBlock *block = c.access->getParent();
    auto found = std::find_if(emitters.begin(), emitters.end(),
                              [&](const auto &entry) { return entry.first == block; });
    if (found == emitters.end()) {
      emitters.emplace_back(block, std::make_unique<Emitter>(M, limits));
      found = std::prev(emitters.end());
    }
    Emitter &e = *found->second;
    e.setDistance(c.distance);
    for (const auto &[phi, step] : c.inductions)
      e.advance(phi, step);
    e.emit(c);
  }
  unsigned added = 0;
  for (auto &[block, e] : emitters)
    added += e->finish();
  return added;
}

} // namespace

/// Adds indirect-access prefetches to every function defined in `module`; returns how many.
/// `kind` is the metadata kind marking memory-base loads; `length_delta` is the distance in
/// bytes from a `VMMemory`'s base field to its length field.
extern "C" unsigned spate_llvm_prefetch_indirect(LLVMModuleRef module, const char *kind,
                                                 uint64_t length_delta) {
  memoryBaseKind = kind;
  Module &M = *unwrap(module);
  TargetLibraryInfoImpl tlii{Triple(M.getTargetTriple())};
  unsigned added = 0;
  for (Function &F : M) {
    if (F.isDeclaration())
      continue;
    DominatorTree DT(F);
    LoopInfo LI(DT);
    if (LI.empty())
      continue;
    TargetLibraryInfo TLI(tlii, &F);
    AssumptionCache AC(F);
    ScalarEvolution SE(F, TLI, AC, DT, LI);
    for (Loop *L : LI.getLoopsInPreorder())
      if (L->isInnermost())
        added += prefetchLoop(*L, SE, DT, M, length_delta);
  }
  return added;
}
