//===-- FtsanPass.cpp: the ftsan instrumentation pass (new pass manager plugin) ----------===//
//
// Inserts calls to the ftsan runtime (include/ftsan_abi.h) before every memory access,
// around every atomic instruction, and at function entry and exit; redirects calls to C-API
// synchronization functions to runtime wrappers; adds a constructor that checks the ABI.
// The rest is done by the runtime.
//
// Two passes:
// - ftsan-mark runs at pipeline start, before inlining. It tags the memory operations of the
//   CPython refcount helpers (Py_INCREF, Py_DECREF, ...) with !ftsan.refcount metadata. The
//   inliner copies metadata with the instructions, so after inlining the designed-racy
//   refcount fields (ob_ref_local, ob_ref_shared, ob_tid) are still recognisable and are not
//   treated as ordinary accesses.
// - ftsan runs last in the optimizer pipeline (as ThreadSanitizer does), so accesses that the
//   optimizer removed cost nothing. It is required, so it also runs at -O0.
//===--------------------------------------------------------------------------------------===//

#include "ftsan_abi.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Analysis/CaptureTracking.h"
#include "llvm/Analysis/LoopInfo.h"
#include "llvm/Analysis/ScalarEvolution.h"
#include "llvm/Analysis/ScalarEvolutionExpressions.h"
#include "llvm/Analysis/ValueTracking.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/Dominators.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/InstIterator.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/PassManager.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Passes/PassPlugin.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Transforms/Utils/BasicBlockUtils.h"
#include "llvm/Transforms/Utils/Cloning.h"
#include "llvm/Transforms/Utils/LoopUtils.h"
#include "llvm/Transforms/Utils/ModuleUtils.h"
#include "llvm/Transforms/Utils/ScalarEvolutionExpander.h"

#include <cstdlib>

using namespace llvm;

#ifndef FTSAN_VERSION_STRING
#define FTSAN_VERSION_STRING "0"
#endif

static cl::opt<bool> ClInstrumentMemory("ftsan-instrument-memory", cl::init(true), cl::Hidden,
                                        cl::desc("instrument plain loads and stores"));
static cl::opt<bool> ClInstrumentAtomics("ftsan-instrument-atomics", cl::init(true), cl::Hidden,
                                         cl::desc("instrument atomic instructions"));
static cl::opt<bool> ClInstrumentFuncEntryExit("ftsan-instrument-func-entry-exit", cl::init(true),
                                               cl::Hidden,
                                               cl::desc("instrument function entry and exit"));
static cl::opt<bool> ClHoistLoops("ftsan-hoist-loops", cl::init(true), cl::Hidden,
                                  cl::desc("check the contiguous accesses of a loop without "
                                           "synchronization as one range before the loop"));

namespace {

const char *const kRefcountMD = "ftsan.refcount";

// The static inline refcount helpers of CPython's headers (3.13 object.h, 3.14 refcount.h).
// Their loads and stores touch the refcount fields by design from several threads.
const char *const kRefcountHelpers[] = {
    "Py_INCREF",      "Py_DECREF",     "Py_XINCREF",   "Py_XDECREF",
    "_Py_NewRef",     "_Py_XNewRef",   "_Py_IsImmortal", "_Py_IsImmortalLoose",
    "_Py_IsStaticImmortal", "_Py_IsOwnedByCurrentThread", "_Py_ThreadId",
    "Py_REFCNT",      "_Py_REFCNT",    "Py_SET_REFCNT", "_Py_SetImmortal",
    "_Py_INCREF_IncRefTotal", "_Py_DECREF_DecRefTotal",
};

template <size_t N> bool nameIn(const char *const (&Names)[N], StringRef Name) {
  for (const char *H : Names)
    if (Name == H)
      return true;
  return false;
}

bool isRefcountHelper(StringRef Name) { return nameIn(kRefcountHelpers, Name); }

// The static inline helpers that read an object's type and a type's flags (Py_TYPE,
// Py_IS_TYPE, PyType_HasFeature, under PyXxx_Check and most C code). The interpreter sets
// ob_type when it creates an object and tp_flags when it readies a type; extension code
// reads them in nearly every function, and checking each read cost a runtime call. Their
// loads get the same tag as the refcount helpers' and are not checked (a race of a
// Py_SET_TYPE with a Py_TYPE read is no longer seen; the store itself still is).
const char *const kHeaderReadHelpers[] = {"Py_TYPE", "_Py_TYPE", "Py_IS_TYPE", "PyType_HasFeature"};

// PyMutex's inline fast paths (3.13 and 3.14 cpython/lock.h): _PyMutex_Lock's
// compare-and-swap takes the lock, _PyMutex_Unlock's releases it. Both are seq_cst, which
// would make each an acquire and a release: a release at every lock attempt (failed ones
// too, so a waiter's earlier accesses would be ordered before the next owner's, hiding
// races) and an acquire at every unlock, four sync-object updates per critical section.
// Tagged here, the lock's CAS is instrumented as an acquire and the unlock's as a release.
const char *const kMutexMD = "ftsan.mutex";

int mutexHelperRole(StringRef Name) {
  if (Name == "_PyMutex_Lock")
    return FTSAN_MO_ACQUIRE;
  if (Name == "_PyMutex_Unlock")
    return FTSAN_MO_RELEASE;
  return -1;
}

bool isHeaderReadHelper(StringRef Name) { return nameIn(kHeaderReadHelpers, Name); }

// ---------------------------------------------------------------------------------------
// The refcount operations whose call sites report an event to the runtime (contention
// analysis), with the kind of operation. The X variants and Py_NewRef call Py_INCREF or
// Py_DECREF from inside; counting their call sites counts each operation once.
int refcountEventKind(StringRef Name) {
  if (Name == "Py_INCREF" || Name == "Py_XINCREF" || Name == "_Py_NewRef" || Name == "_Py_XNewRef")
    return FTSAN_RC_INCREF;
  if (Name == "Py_DECREF" || Name == "Py_XDECREF")
    return FTSAN_RC_DECREF;
  return -1;
}

void inlineLocalCallees(Function &F) {
  for (int Round = 0; Round < 8; Round++) {
    SmallVector<CallBase *, 8> Calls;
    for (Instruction &I : instructions(F))
      if (auto *CB = dyn_cast<CallBase>(&I))
        if (Function *Callee = CB->getCalledFunction())
          if (!Callee->isDeclaration() && Callee != &F && !Callee->isVarArg())
            Calls.push_back(CB);
    if (Calls.empty())
      return;
    for (CallBase *CB : Calls) {
      InlineFunctionInfo IFI;
      InlineFunction(*CB, IFI);
    }
  }
}

struct FtsanMarkPass : PassInfoMixin<FtsanMarkPass> {
  PreservedAnalyses run(Module &M, ModuleAnalysisManager &) {
    LLVMContext &Ctx = M.getContext();
    MDNode *Tag = MDNode::get(Ctx, {});
    bool Changed = insertRefcountEvents(M);
    for (Function &F : M) {
      bool Refcount = isRefcountHelper(F.getName()), HeaderRead = isHeaderReadHelper(F.getName());
      int Role = mutexHelperRole(F.getName());
      if (F.isDeclaration() || (!Refcount && !HeaderRead && Role < 0))
        continue;
      // The helpers reach the fields through other static inline functions
      // (_Py_atomic_add_ssize, _Py_atomic_load_uint32_relaxed,
      // _Py_atomic_compare_exchange_uint8, ...) that the rest of the code uses too, e.g.
      // the PyMutex fast path. Inline those into the helper first, so only the copies
      // inside the helper get the tag.
      inlineLocalCallees(F);
      MDNode *RoleMD = Role < 0 ? nullptr
                                : MDNode::get(Ctx, ConstantAsMetadata::get(
                                                       ConstantInt::get(Type::getInt32Ty(Ctx), Role)));
      for (Instruction &I : instructions(F)) {
        if (Refcount ? I.mayReadOrWriteMemory() && !isa<CallBase>(I) : HeaderRead && isa<LoadInst>(I))
          I.setMetadata(kRefcountMD, Tag);
        else if (RoleMD && isa<AtomicCmpXchgInst>(I))
          I.setMetadata(kMutexMD, RoleMD);
        else
          continue;
        Changed = true;
      }
    }
    return Changed ? PreservedAnalyses::none() : PreservedAnalyses::all();
  }
  static bool isRequired() { return true; }

private:
  // Before inlining, a call to a refcount helper is still a call: the event goes right
  // before it, in the caller, so its PC names the caller's line at every -O level. The
  // object is the helper's last pointer argument (the debug builds' Py_DECREF takes
  // filename and line first).
  //
  // Sampling happens inline: each module keeps a thread-local countdown, and only when it
  // runs out does the site call the runtime, which counts the operation (weighted by the
  // sampling period) and returns the next countdown (1 in race mode: every operation). An
  // uncontended refcount operation costs a few nanoseconds, so a call on each one would
  // more than double it (measured: 2.5x on a refcount loop at one thread).
  bool insertRefcountEvents(Module &M) {
    LLVMContext &Ctx = M.getContext();
    Type *I32 = Type::getInt32Ty(Ctx);
    FunctionCallee Event = M.getOrInsertFunction(
        "__ftsan_refcount", AttributeList().addFnAttribute(Ctx, Attribute::NoUnwind), I32,
        PointerType::get(Ctx, 0), I32);
    GlobalVariable *Countdown = M.getGlobalVariable("ftsan.rc_countdown", true);
    bool Changed = false;
    for (Function &F : M) {
      if (F.isDeclaration() || isRefcountHelper(F.getName()) || F.getName().starts_with("__ftsan"))
        continue;
      SmallVector<std::pair<CallBase *, int>, 8> Sites;
      for (Instruction &I : instructions(F))
        if (auto *CB = dyn_cast<CallBase>(&I))
          if (Function *Callee = CB->getCalledFunction()) {
            int Kind = refcountEventKind(Callee->getName());
            if (Kind >= 0 && CB->arg_size() > 0)
              Sites.push_back({CB, Kind});
          }
      for (auto [CB, Kind] : Sites) {
        Value *Op = nullptr;
        for (unsigned A = CB->arg_size(); A > 0 && !Op; A--)
          if (CB->getArgOperand(A - 1)->getType()->isPointerTy())
            Op = CB->getArgOperand(A - 1);
        if (!Op)
          continue;
        if (!Countdown) {
          Countdown = new GlobalVariable(M, I32, false, GlobalValue::InternalLinkage,
                                         ConstantInt::get(I32, 0), "ftsan.rc_countdown", nullptr,
                                         GlobalValue::InitialExecTLSModel);
        }
        IRBuilder<> B(CB);
        Value *Left = B.CreateSub(B.CreateLoad(I32, Countdown), B.getInt32(1));
        Value *Due = B.CreateICmpSLE(Left, B.getInt32(0));
        B.CreateStore(Left, Countdown);
        Instruction *Then = SplitBlockAndInsertIfThen(Due, CB, false);
        IRBuilder<> TB(Then);
        TB.CreateStore(TB.CreateCall(Event, {Op, TB.getInt32(Kind)}), Countdown);
        Changed = true;
      }
    }
    return Changed;
  }
};

// ---------------------------------------------------------------------------------------
struct FtsanInstrumentPass : PassInfoMixin<FtsanInstrumentPass> {
  PreservedAnalyses run(Module &M, ModuleAnalysisManager &);
  static bool isRequired() { return true; }

private:
  void initialize(Module &M);
  bool instrumentFunction(Function &F, FunctionAnalysisManager &FAM);
  bool isIgnoredAccess(Instruction *I, Value *Addr);
  static void findReadsBeforeWrites(Function &F, SmallPtrSetImpl<Instruction *> &Skip);
  bool hoistLoopAccesses(Function &F, FunctionAnalysisManager &FAM,
                         SmallPtrSetImpl<Instruction *> &Skip);
  void instrumentPlain(Instruction *I, Value *Addr, Type *Ty, bool IsWrite);
  void instrumentAtomic(Instruction *I, Value *Addr, Type *Ty, AtomicOrdering O, unsigned Op);

  Type *IntptrTy = nullptr;
  Type *PtrTy = nullptr;
  FunctionCallee Read[5], Write[5], ReadRange, WriteRange;
  FunctionCallee AtomicPre, AtomicPreCas, AtomicPost, Fence, FuncEntry, FuncExit, Borrow;
  StringSet<> Wrapped;
  StringMap<unsigned> BorrowApis;
};

unsigned memoryOrder(AtomicOrdering O) {
  switch (O) {
  case AtomicOrdering::NotAtomic:
  case AtomicOrdering::Unordered:
  case AtomicOrdering::Monotonic:
    return FTSAN_MO_RELAXED;
  case AtomicOrdering::Acquire:
    return FTSAN_MO_ACQUIRE;
  case AtomicOrdering::Release:
    return FTSAN_MO_RELEASE;
  case AtomicOrdering::AcquireRelease:
    return FTSAN_MO_ACQ_REL;
  case AtomicOrdering::SequentiallyConsistent:
    return FTSAN_MO_SEQ_CST;
  }
  return FTSAN_MO_SEQ_CST;
}

// log2 of an access size the runtime has a dedicated entry point for, or -1.
int sizeIndex(uint64_t Bytes) {
  switch (Bytes) {
  case 1: return 0;
  case 2: return 1;
  case 4: return 2;
  case 8: return 3;
  case 16: return 4;
  default: return -1;
  }
}

void FtsanInstrumentPass::initialize(Module &M) {
  LLVMContext &Ctx = M.getContext();
  const DataLayout &DL = M.getDataLayout();
  IntptrTy = DL.getIntPtrType(Ctx);
  PtrTy = PointerType::get(Ctx, 0);
  Type *VoidTy = Type::getVoidTy(Ctx);
  Type *I32 = Type::getInt32Ty(Ctx);
  AttributeList Attr = AttributeList().addFnAttribute(Ctx, Attribute::NoUnwind);
  for (int i = 0; i < 5; i++) {
    std::string Size = std::to_string(1 << i);
    Read[i] = M.getOrInsertFunction("__ftsan_read" + Size, Attr, VoidTy, PtrTy);
    Write[i] = M.getOrInsertFunction("__ftsan_write" + Size, Attr, VoidTy, PtrTy);
  }
  ReadRange = M.getOrInsertFunction("__ftsan_read_range", Attr, VoidTy, PtrTy, IntptrTy);
  WriteRange = M.getOrInsertFunction("__ftsan_write_range", Attr, VoidTy, PtrTy, IntptrTy);
  AtomicPre = M.getOrInsertFunction("__ftsan_atomic_pre", Attr, VoidTy, PtrTy, I32);
  AtomicPost = M.getOrInsertFunction("__ftsan_atomic_post", Attr, VoidTy, PtrTy, I32);
  AtomicPreCas = M.getOrInsertFunction("__ftsan_atomic_pre_cas", Attr, VoidTy, PtrTy, I32,
                                       Type::getInt64Ty(Ctx));
  Fence = M.getOrInsertFunction("__ftsan_fence", Attr, VoidTy, I32);
  FuncEntry = M.getOrInsertFunction("__ftsan_func_entry", Attr, VoidTy, PtrTy);
  FuncExit = M.getOrInsertFunction("__ftsan_func_exit", Attr, VoidTy);
  Borrow = M.getOrInsertFunction("__ftsan_borrow", Attr, VoidTy, PtrTy, I32);
#define FTSAN__BORROW_API(id, name, fix) BorrowApis[#name] = id;
  FTSAN_BORROW_APIS(FTSAN__BORROW_API)
#undef FTSAN__BORROW_API
#define FTSAN__WRAPPED_NAME(name, ret, params, args) Wrapped.insert(#name);
  FTSAN_CAPI_WRAPPERS(FTSAN__WRAPPED_NAME)
  FTSAN_ALLOC_WRAPPERS(FTSAN__WRAPPED_NAME)
#undef FTSAN__WRAPPED_NAME
}

// Whether an access comes from the body of a refcount helper or (a load) of a header-read
// helper, by its debug location. The tag set at pipeline start does not always survive:
// when two tagged loads of the same field are merged (PyObject_TypeCheck reads ob_type
// through Py_IS_TYPE, then again through Py_TYPE), LLVM drops metadata it does not know,
// while the kept load keeps its location inside the helper. ftsan-cc always compiles with
// -g, so the location is there unless the user turned debug info off again.
//
// Only a scalar access of at most 8 bytes counts: the vectorizer may merge a helper's load
// of ob_type with the caller's load of the next field into one <2 x ptr> load that keeps
// the helper's location; that load reads the caller's field too and must be checked.
bool inHelperBody(const Instruction *I) {
  const DILocation *Loc = I->getDebugLoc().get();
  if (!Loc)
    return false;
  Type *Ty = nullptr;
  if (auto *LI = dyn_cast<LoadInst>(I))
    Ty = LI->getType();
  else if (auto *SI = dyn_cast<StoreInst>(I))
    Ty = SI->getValueOperand()->getType();
  else if (auto *RMW = dyn_cast<AtomicRMWInst>(I))
    Ty = RMW->getValOperand()->getType();
  else if (auto *CX = dyn_cast<AtomicCmpXchgInst>(I))
    Ty = CX->getCompareOperand()->getType();
  if (!Ty || !(Ty->isIntegerTy() || Ty->isPointerTy()) ||
      I->getModule()->getDataLayout().getTypeStoreSize(Ty).getFixedValue() > 8)
    return false;
  const DISubprogram *SP = Loc->getScope()->getSubprogram();
  if (!SP)
    return false;
  StringRef Name = SP->getName();
  return isRefcountHelper(Name) || (isa<LoadInst>(I) && isHeaderReadHelper(Name));
}

bool FtsanInstrumentPass::isIgnoredAccess(Instruction *I, Value *Addr) {
  if (I->getMetadata(kRefcountMD) || inHelperBody(I))
    return true;
  if (cast<PointerType>(Addr->getType()->getScalarType())->getAddressSpace() != 0)
    return true;
  const Value *Obj = getUnderlyingObject(Addr);
  if (auto *GV = dyn_cast<GlobalVariable>(Obj)) {
    // Constants cannot race; compiler-generated counters (profiling, coverage) are not the
    // user's data.
    if (GV->isConstant())
      return true;
    if (GV->getName().starts_with("__llvm") || GV->getName().starts_with("__profc"))
      return true;
    // Thread-local variables (the refcount-sampling countdown among them) are private to
    // their thread unless their address escapes, which a TLS variable's rarely does.
    if (GV->isThreadLocal() || GV->getName().starts_with("ftsan."))
      return true;
  }
  // A local whose address never escapes is private to its thread.
  if (isa<AllocaInst>(Obj) && !PointerMayBeCaptured(Obj, /*ReturnCaptures=*/true,
                                                    /*StoreCaptures=*/true))
    return true;
  return false;
}

// A plain load from an address that the same basic block later stores to, with no call in
// between, need not be checked: the store's check finds every race the load's would (a
// remote write races with both; a remote read races with the store alone), at the same
// address and size, and the block cannot leave between the two. (ThreadSanitizer's pass
// drops the same loads.) Only the very same pointer value counts: no alias analysis.
void FtsanInstrumentPass::findReadsBeforeWrites(Function &F, SmallPtrSetImpl<Instruction *> &Skip) {
  const DataLayout &DL = F.getParent()->getDataLayout();
  SmallDenseMap<Value *, uint64_t, 8> WrittenLater; // pointer -> bytes stored through it
  for (BasicBlock &BB : F) {
    WrittenLater.clear();
    for (Instruction &I : reverse(BB)) {
      if (I.isAtomic() || isa<FenceInst>(I)) {
        WrittenLater.clear(); // an atomic load or store may synchronize too
        continue;
      }
      if (auto *SI = dyn_cast<StoreInst>(&I)) {
        if (!SI->isVolatile() && !SI->getMetadata(kRefcountMD) && !inHelperBody(SI))
          WrittenLater[SI->getPointerOperand()] =
              DL.getTypeStoreSize(SI->getValueOperand()->getType()).getKnownMinValue();
      } else if (auto *LI = dyn_cast<LoadInst>(&I)) {
        if (LI->isVolatile())
          continue;
        auto It = WrittenLater.find(LI->getPointerOperand());
        if (It != WrittenLater.end() && !DL.getTypeStoreSize(LI->getType()).isScalable() &&
            It->second == DL.getTypeStoreSize(LI->getType()).getFixedValue())
          Skip.insert(LI);
      } else if (isa<CallBase>(I) && !isa<DbgInfoIntrinsic>(I)) {
        WrittenLater.clear(); // a call may synchronize, or not return
      }
    }
  }
}

// The accesses of a loop that cannot synchronize are checked as ranges before it runs.
//
// Inside an innermost loop with no call (other than intrinsics), no atomic and no fence, the
// thread's vector clock cannot change, so checking all the loop's accesses at its entry
// finds the same races as checking each one when it happens (whichever access of a racing
// pair comes second finds it). An access qualifies when it runs in every iteration (its
// block dominates the latch, which is the loop's only exit) and its address advances by a
// constant step (a SCEV add recurrence of the loop). Accesses of the same kind (read or
// write) whose start addresses differ by constants and that advance by the same step form a
// group; when the bytes one iteration of the group touches are contiguous and at least a
// step long, the group touches every byte of [first, last + size) over the whole loop and is
// checked with one __ftsan_read_range/__ftsan_write_range call in the preheader, with the
// trip count from SCEV (exact backedge-taken count). A group that leaves gaps (a strided
// field of an array of structs) keeps its per-access calls: a range over the gaps would
// claim bytes the loop never touches. The range call carries the debug location of the
// group's first access, so a report names that line.
bool FtsanInstrumentPass::hoistLoopAccesses(Function &F, FunctionAnalysisManager &FAM,
                                            SmallPtrSetImpl<Instruction *> &Skip) {
  LoopInfo &LI = FAM.getResult<LoopAnalysis>(F);
  if (LI.empty())
    return false;
  DominatorTree &DT = FAM.getResult<DominatorTreeAnalysis>(F);
  auto MayHoist = [](Loop *L) {
    if (!L->isInnermost() || !L->getLoopLatch() || L->getExitingBlock() != L->getLoopLatch())
      return false;
    for (BasicBlock *BB : L->blocks())
      for (Instruction &I : *BB)
        if (I.isAtomic() || isa<FenceInst>(I) || (isa<CallBase>(I) && !isa<IntrinsicInst>(I)))
          return false; // may synchronize
    return true;
  };
  // Late in the pipeline a loop may have lost its preheader (its entry block also branches
  // elsewhere): give it one, where the range checks go.
  SmallVector<Loop *, 8> Candidates;
  bool NewBlocks = false;
  for (Loop *L : LI.getLoopsInPreorder())
    if (MayHoist(L)) {
      if (!L->getLoopPreheader())
        NewBlocks |= InsertPreheaderForLoop(L, &DT, &LI, nullptr, /*PreserveLCSSA=*/false) != nullptr;
      if (L->getLoopPreheader())
        Candidates.push_back(L);
    }
  if (NewBlocks) { // the two updated analyses stay, the others are recomputed
    PreservedAnalyses PA;
    PA.preserve<LoopAnalysis>();
    PA.preserve<DominatorTreeAnalysis>();
    FAM.invalidate(F, PA);
  }
  ScalarEvolution &SE = FAM.getResult<ScalarEvolutionAnalysis>(F);
  const DataLayout &DL = F.getParent()->getDataLayout();
  SCEVExpander Expander(SE, DL, "ftsan.range");

  struct Piece {
    Instruction *I;
    int64_t Off;
    uint64_t Size;
  };
  struct Group {
    bool IsWrite;
    int64_t Step;
    const SCEV *Start;
    SmallVector<Piece, 8> Pieces;
  };

  for (Loop *L : Candidates) {
    BasicBlock *Pre = L->getLoopPreheader(), *Latch = L->getLoopLatch();
    const SCEV *Taken = SE.getBackedgeTakenCount(L);
    if (isa<SCEVCouldNotCompute>(Taken) || !Taken->getType()->isIntegerTy() ||
        Taken->getType()->getIntegerBitWidth() > IntptrTy->getIntegerBitWidth())
      continue;

    SmallVector<Group, 4> Groups;
    for (BasicBlock *BB : L->blocks()) {
      if (!DT.dominates(BB, Latch))
        continue; // not run in every iteration
      for (Instruction &I : *BB) {
        Value *Ptr;
        Type *Ty;
        bool IsWrite;
        if (auto *Ld = dyn_cast<LoadInst>(&I)) {
          if (Ld->isVolatile() || Skip.contains(&I))
            continue;
          Ptr = Ld->getPointerOperand(), Ty = Ld->getType(), IsWrite = false;
        } else if (auto *St = dyn_cast<StoreInst>(&I)) {
          if (St->isVolatile())
            continue;
          Ptr = St->getPointerOperand(), Ty = St->getValueOperand()->getType(), IsWrite = true;
        } else {
          continue;
        }
        TypeSize TS = DL.getTypeStoreSize(Ty);
        if (TS.isScalable() || TS.getFixedValue() == 0 || isIgnoredAccess(&I, Ptr))
          continue;
        auto *AR = dyn_cast<SCEVAddRecExpr>(SE.getSCEV(Ptr));
        if (!AR || AR->getLoop() != L || !AR->isAffine())
          continue;
        auto *StepC = dyn_cast<SCEVConstant>(AR->getStepRecurrence(SE));
        if (!StepC || StepC->getAPInt().getSignificantBits() > 32 || StepC->isZero())
          continue;
        int64_t Step = StepC->getAPInt().getSExtValue();
        Piece P{&I, 0, TS.getFixedValue()};
        Group *G = nullptr;
        for (Group &Cand : Groups) {
          if (Cand.IsWrite != IsWrite || Cand.Step != Step)
            continue;
          auto *Diff = dyn_cast<SCEVConstant>(SE.getMinusSCEV(AR->getStart(), Cand.Start));
          if (Diff && Diff->getAPInt().getSignificantBits() <= 32) {
            P.Off = Diff->getAPInt().getSExtValue();
            G = &Cand;
            break;
          }
        }
        if (!G)
          G = &Groups.emplace_back(Group{IsWrite, Step, AR->getStart(), {}});
        G->Pieces.push_back(P);
      }
    }

    Instruction *At = Pre->getTerminator();
    for (Group &G : Groups) {
      // The bytes one iteration touches, relative to Start: they must be one interval.
      SmallVector<Piece, 8> Sorted(G.Pieces);
      llvm::sort(Sorted, [](const Piece &A, const Piece &B) { return A.Off < B.Off; });
      int64_t Lo = Sorted.front().Off, Hi = Lo;
      bool Contiguous = true;
      for (const Piece &P : Sorted) {
        if (P.Off > Hi)
          Contiguous = false;
        Hi = std::max(Hi, P.Off + (int64_t)P.Size);
      }
      uint64_t AbsStep = G.Step < 0 ? -(uint64_t)G.Step : (uint64_t)G.Step;
      if (!Contiguous || (uint64_t)(Hi - Lo) < AbsStep)
        continue;
      // Iteration k touches [Start + Lo + k*Step, Start + Hi + k*Step), k = 0..Taken.
      const SCEV *Trips = SE.getNoopOrZeroExtend(Taken, IntptrTy);
      const SCEV *Span = SE.getMulExpr(Trips, SE.getConstant(IntptrTy, AbsStep));
      const SCEV *Begin = SE.getAddExpr(G.Start, SE.getConstant(IntptrTy, Lo, /*isSigned=*/true));
      if (G.Step < 0)
        Begin = SE.getMinusSCEV(Begin, Span);
      const SCEV *Len = SE.getAddExpr(Span, SE.getConstant(IntptrTy, Hi - Lo));
      if (!Expander.isSafeToExpandAt(Begin, At) || !Expander.isSafeToExpandAt(Len, At))
        continue;
      Value *BeginV = Expander.expandCodeFor(Begin, PtrTy, At);
      Value *LenV = Expander.expandCodeFor(Len, IntptrTy, At);
      Instruction *First = G.Pieces.front().I; // the first in program order
      IRBuilder<> B(At);
      B.SetCurrentDebugLocation(First->getDebugLoc());
      B.CreateCall(G.IsWrite ? WriteRange : ReadRange, {BeginV, LenV});
      for (const Piece &P : G.Pieces)
        Skip.insert(P.I);
    }
  }
  return NewBlocks;
}

void FtsanInstrumentPass::instrumentPlain(Instruction *I, Value *Addr, Type *Ty, bool IsWrite) {
  const DataLayout &DL = I->getModule()->getDataLayout();
  TypeSize TS = DL.getTypeStoreSize(Ty);
  if (TS.isScalable())
    return;
  uint64_t Bytes = TS.getFixedValue();
  IRBuilder<> B(I);
  int Idx = sizeIndex(Bytes);
  if (Idx >= 0) {
    B.CreateCall(IsWrite ? Write[Idx] : Read[Idx], {Addr});
  } else if (Bytes > 0) {
    B.CreateCall(IsWrite ? WriteRange : ReadRange, {Addr, ConstantInt::get(IntptrTy, Bytes)});
  }
}

void FtsanInstrumentPass::instrumentAtomic(Instruction *I, Value *Addr, Type *Ty,
                                           AtomicOrdering O, unsigned Op) {
  const DataLayout &DL = I->getModule()->getDataLayout();
  int Idx = sizeIndex(DL.getTypeStoreSize(Ty).getFixedValue());
  if (Idx < 0)
    return;
  Constant *Desc = ConstantInt::get(Type::getInt32Ty(I->getContext()),
                                    FTSAN_ATOMIC_DESC(Idx, memoryOrder(O), Op));
  IRBuilder<> B(I);
  auto *CX = dyn_cast<AtomicCmpXchgInst>(I);
  Value *Expected = nullptr;
  if (CX && Idx <= 3) { // the expected value, zero-extended (a pointer as its integer)
    Value *Cmp = CX->getCompareOperand();
    if (Cmp->getType()->isPointerTy())
      Cmp = B.CreatePtrToInt(Cmp, IntptrTy);
    Expected = B.CreateZExtOrBitCast(Cmp, B.getInt64Ty());
  }
  if (Expected)
    B.CreateCall(AtomicPreCas, {Addr, Desc, Expected});
  else
    B.CreateCall(AtomicPre, {Addr, Desc});
  B.SetInsertPoint(I->getNextNode());
  Value *PostDesc = Desc;
  if (Op == FTSAN_AOP_CAS) {
    // Only a compare-and-swap that succeeded acquires: pass its success bit along.
    Value *Ok = B.CreateExtractValue(I, 1);
    PostDesc = B.CreateOr(Desc, B.CreateShl(B.CreateZExt(Ok, B.getInt32Ty()), 12));
  }
  B.CreateCall(AtomicPost, {Addr, PostDesc});
}

bool FtsanInstrumentPass::instrumentFunction(Function &F, FunctionAnalysisManager &FAM) {
  if (F.isDeclaration() || F.getName().starts_with("__ftsan") || F.getName().starts_with("ftsan.") ||
      F.hasFnAttribute(Attribute::Naked) ||
      F.hasFnAttribute(Attribute::DisableSanitizerInstrumentation))
    return false;
  // A refcount helper left out of line (-O0) gets no access instrumentation, but its call
  // to the decref slow path is redirected like everywhere else.
  if (isRefcountHelper(F.getName())) {
    bool Changed = false;
    for (Instruction &I : instructions(F))
      if (auto *CB = dyn_cast<CallBase>(&I))
        if (Function *Callee = CB->getCalledFunction())
          if (Wrapped.contains(Callee->getName())) {
            CB->setCalledFunction(F.getParent()->getOrInsertFunction(
                ("__ftsan_" + Callee->getName()).str(), Callee->getFunctionType()));
            Changed = true;
          }
    return Changed;
  }

  SmallVector<Instruction *, 32> Accesses, Rets;
  SmallVector<CallBase *, 8> Redirects;
  SmallVector<std::pair<CallBase *, unsigned>, 8> Borrows;
  bool HasCalls = false;
  for (Instruction &I : instructions(F)) {
    if (isa<LoadInst>(I) || isa<StoreInst>(I) || isa<AtomicRMWInst>(I) ||
        isa<AtomicCmpXchgInst>(I) || isa<FenceInst>(I) || isa<MemIntrinsic>(I))
      Accesses.push_back(&I);
    else if (isa<ReturnInst>(I))
      Rets.push_back(&I);
    if (auto *CB = dyn_cast<CallBase>(&I)) {
      if (isa<IntrinsicInst>(CB))
        continue;
      HasCalls = true;
      if (Function *Callee = CB->getCalledFunction()) {
        if (Wrapped.contains(Callee->getName()))
          Redirects.push_back(CB);
        auto It = BorrowApis.find(Callee->getName());
        if (It != BorrowApis.end() && CB->getType()->isPointerTy())
          Borrows.push_back({CB, It->second});
      }
    }
  }

  SmallPtrSet<Instruction *, 16> Skip; // accesses checked elsewhere, or not at all
  findReadsBeforeWrites(F, Skip);
  size_t Hoisted = Skip.size();
  bool NewBlocks = ClInstrumentMemory && ClHoistLoops && hoistLoopAccesses(F, FAM, Skip);

  bool Changed = Skip.size() != Hoisted; // range calls were added
  for (Instruction *I : Accesses) {
    if (auto *LI = dyn_cast<LoadInst>(I)) {
      if (Skip.contains(I) || isIgnoredAccess(I, LI->getPointerOperand()))
        continue;
      if (LI->isAtomic()) {
        if (ClInstrumentAtomics)
          instrumentAtomic(I, LI->getPointerOperand(), LI->getType(), LI->getOrdering(),
                           FTSAN_AOP_LOAD);
      } else if (ClInstrumentMemory) {
        instrumentPlain(I, LI->getPointerOperand(), LI->getType(), false);
      }
    } else if (auto *SI = dyn_cast<StoreInst>(I)) {
      if (Skip.contains(I) || isIgnoredAccess(I, SI->getPointerOperand()))
        continue;
      Type *Ty = SI->getValueOperand()->getType();
      if (SI->isAtomic()) {
        if (ClInstrumentAtomics)
          instrumentAtomic(I, SI->getPointerOperand(), Ty, SI->getOrdering(), FTSAN_AOP_STORE);
      } else if (ClInstrumentMemory) {
        instrumentPlain(I, SI->getPointerOperand(), Ty, true);
      }
    } else if (auto *RMW = dyn_cast<AtomicRMWInst>(I)) {
      if (ClInstrumentAtomics && !isIgnoredAccess(I, RMW->getPointerOperand()))
        instrumentAtomic(I, RMW->getPointerOperand(), RMW->getValOperand()->getType(),
                         RMW->getOrdering(), FTSAN_AOP_RMW);
    } else if (auto *CX = dyn_cast<AtomicCmpXchgInst>(I)) {
      if (ClInstrumentAtomics && !isIgnoredAccess(I, CX->getPointerOperand())) {
        AtomicOrdering O = CX->getSuccessOrdering();
        if (MDNode *Role = I->getMetadata(kMutexMD)) // PyMutex's lock or unlock
          O = mdconst::extract<ConstantInt>(Role->getOperand(0))->getZExtValue() == FTSAN_MO_ACQUIRE
                  ? AtomicOrdering::Acquire
                  : AtomicOrdering::Release;
        instrumentAtomic(I, CX->getPointerOperand(), CX->getCompareOperand()->getType(), O,
                         FTSAN_AOP_CAS);
      }
    } else if (auto *FI = dyn_cast<FenceInst>(I)) {
      // A single-thread fence orders against signal handlers only.
      if (ClInstrumentAtomics && FI->getSyncScopeID() != SyncScope::SingleThread) {
        IRBuilder<> B(I);
        B.CreateCall(Fence, {ConstantInt::get(Type::getInt32Ty(F.getContext()),
                                              memoryOrder(FI->getOrdering()))});
      }
    } else if (auto *MI = dyn_cast<MemIntrinsic>(I)) {
      if (!ClInstrumentMemory || I->getMetadata(kRefcountMD))
        continue;
      IRBuilder<> B(I);
      Value *Len = B.CreateIntCast(MI->getLength(), IntptrTy, false);
      if (auto *MT = dyn_cast<MemTransferInst>(MI))
        B.CreateCall(ReadRange, {MT->getRawSource(), Len});
      B.CreateCall(WriteRange, {MI->getRawDest(), Len});
    } else {
      continue;
    }
    Changed = true;
  }

  // A borrowed reference: tell the runtime right after the call returns it.
  for (auto [CB, Id] : Borrows) {
    if (isa<InvokeInst>(CB))
      continue;
    IRBuilder<> B(CB->getNextNode());
    B.SetCurrentDebugLocation(CB->getDebugLoc()); // the event names the borrowing call's line
    B.CreateCall(Borrow, {CB, B.getInt32(Id)});
    Changed = true;
  }

  for (CallBase *CB : Redirects) {
    Function *Callee = CB->getCalledFunction();
    FunctionCallee W = F.getParent()->getOrInsertFunction(("__ftsan_" + Callee->getName()).str(),
                                                          Callee->getFunctionType());
    CB->setCalledFunction(W);
    Changed = true;
  }

  if (ClInstrumentFuncEntryExit && (Changed || HasCalls)) {
    IRBuilder<> B(&*F.getEntryBlock().getFirstInsertionPt());
    Function *RetAddr = Intrinsic::getDeclaration(F.getParent(), Intrinsic::returnaddress);
    B.CreateCall(FuncEntry, {B.CreateCall(RetAddr, {B.getInt32(0)})});
    for (Instruction *R : Rets) {
      Instruction *Before = R;
      // Nothing may stand between a musttail call and its return.
      if (auto *Prev = dyn_cast_or_null<CallInst>(R->getPrevNode()))
        if (Prev->isMustTailCall())
          Before = Prev;
      IRBuilder<> RB(Before);
      RB.CreateCall(FuncExit, {});
    }
    Changed = true;
  }
  return Changed || NewBlocks;
}

PreservedAnalyses FtsanInstrumentPass::run(Module &M, ModuleAnalysisManager &MAM) {
  // FTSAN_INSTRUMENT=contention (set by ftsan-cc --ftsan-contention-only): a build for
  // contention analysis only keeps the refcount events and the C-API redirections, and
  // drops the per-access calls that race detection needs.
  if (const char *Mode = getenv("FTSAN_INSTRUMENT"))
    if (StringRef(Mode) == "contention") {
      ClInstrumentMemory = false;
      ClInstrumentAtomics = false;
      ClInstrumentFuncEntryExit = false;
    }
  // FTSAN_HOIST_LOOPS=0: every access of a loop keeps its own call (for comparisons).
  if (const char *Hoist = getenv("FTSAN_HOIST_LOOPS"))
    if (StringRef(Hoist) == "0")
      ClHoistLoops = false;
  initialize(M);
  FunctionAnalysisManager &FAM = MAM.getResult<FunctionAnalysisManagerModuleProxy>(M).getManager();
  bool Changed = false;
  bool HasDefinitions = false;
  for (Function &F : M) {
    if (F.isDeclaration())
      continue;
    HasDefinitions = true;
    if (instrumentFunction(F, FAM)) {
      FAM.invalidate(F, PreservedAnalyses::none());
      Changed = true;
    }
  }
  if (HasDefinitions && !M.getFunction("ftsan.module_ctor")) {
    Type *I32 = Type::getInt32Ty(M.getContext());
    auto [Ctor, Init] = createSanitizerCtorAndInitFunctions(
        M, "ftsan.module_ctor", "__ftsan_init", {I32}, {ConstantInt::get(I32, FTSAN_ABI_VERSION)});
    appendToGlobalCtors(M, Ctor, 0);
    Changed = true;
  }
  return Changed ? PreservedAnalyses::none() : PreservedAnalyses::all();
}

} // namespace

extern "C" LLVM_ATTRIBUTE_WEAK PassPluginLibraryInfo llvmGetPassPluginInfo() {
  return {LLVM_PLUGIN_API_VERSION, "ftsan", FTSAN_VERSION_STRING, [](PassBuilder &PB) {
            PB.registerPipelineStartEPCallback(
                [](ModulePassManager &MPM, OptimizationLevel) { MPM.addPass(FtsanMarkPass()); });
            PB.registerOptimizerLastEPCallback([](ModulePassManager &MPM, OptimizationLevel
#if LLVM_VERSION_MAJOR >= 20
                                                  ,
                                                  ThinOrFullLTOPhase
#endif
                                               ) { MPM.addPass(FtsanInstrumentPass()); });
            // For opt: -passes=ftsan-mark,ftsan
            PB.registerPipelineParsingCallback(
                [](StringRef Name, ModulePassManager &MPM, ArrayRef<PassBuilder::PipelineElement>) {
                  if (Name == "ftsan-mark") {
                    MPM.addPass(FtsanMarkPass());
                    return true;
                  }
                  if (Name == "ftsan") {
                    MPM.addPass(FtsanInstrumentPass());
                    return true;
                  }
                  return false;
                });
          }};
}
