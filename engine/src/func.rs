//! Functions: calling wasm from the host ([`Func::call`], [`TypedFunc`]) and host functions
//! callable from wasm ([`Func::new`], [`Func::wrap`]).

use crate::Trap;
use crate::externals::Extern;
use crate::store::{AsContext, AsContextMut, StoreInner, StoreOpaque};
use crate::types::{FuncType, ValType};
use crate::values::{ExternRef, Val};
use crate::vm::instance::InstanceData;
use crate::vm::traphandlers::{self, UnwindReason, catch_traps, raise};
use anyhow::{Result, bail};
use spate_tiers::abi::{VMHostFuncContext, ValRaw};
use spate_tiers::vmctx::{VMContext, VMFuncRef};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A function: defined by a wasm instance or by the host. A handle into its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Func {
    pub(crate) store: u64,
    /// Address of the function's `VMFuncRef`, owned by the store.
    pub(crate) ptr: usize,
}

/// The host closure behind a host function.
pub(crate) type HostClosure<T> =
    Arc<dyn Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync>;

/// A host function's runtime data. Boxed by the store; self-referential pointers are set once
/// it has its final address.
pub(crate) struct HostFuncData {
    ctx: VMHostFuncContext,
    entry: AtomicPtr<u8>,
    pub funcref: VMFuncRef,
    ty: FuncType,
    closure: Box<dyn std::any::Any + Send + Sync>,
    _trampolines: Arc<crate::engine::Trampolines>,
}

/// What a host function sees of its caller: the store's data and the calling instance's exports.
pub struct Caller<'a, T> {
    pub(crate) store: &'a mut StoreInner<T>,
    pub(crate) instance: *mut InstanceData,
}

impl<T> Caller<'_, T> {
    /// The store's host data.
    pub fn data(&self) -> &T {
        &self.store.data
    }

    /// The store's host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.store.data
    }

    /// An export of the calling instance (such as its memory), if the caller is a wasm instance.
    pub fn get_export(&mut self, name: &str) -> Option<Extern> {
        if self.instance.is_null() {
            return None;
        }
        // SAFETY: a non-null `instance` is the live calling instance, owned by this store.
        let inst = unsafe { &*self.instance };
        let idx = inst.module.0.exports.iter().find(|(n, _)| n == name)?.1;
        Some(inst.export(self.store.opaque.id, idx))
    }

    /// The engine of the store.
    pub fn engine(&self) -> &crate::Engine {
        &self.store.opaque.engine
    }
}

impl<T> crate::store::AsContext for Caller<'_, T> {
    type Data = T;
    fn as_context(&self) -> crate::StoreContext<'_, T> {
        crate::StoreContext(self.store)
    }
}

impl<T> crate::store::AsContextMut for Caller<'_, T> {
    fn as_context_mut(&mut self) -> crate::StoreContextMut<'_, T> {
        crate::StoreContextMut(self.store)
    }
}

impl<'a, T> From<&'a Caller<'_, T>> for crate::StoreContext<'a, T> {
    fn from(c: &'a Caller<'_, T>) -> Self {
        crate::StoreContext(c.store)
    }
}

impl<'a, T> From<&'a mut Caller<'_, T>> for crate::StoreContext<'a, T> {
    fn from(c: &'a mut Caller<'_, T>) -> Self {
        crate::StoreContext(c.store)
    }
}

/// Calls `funcref` with `values` (parameters in, results out) from the host.
pub(crate) fn invoke_raw(
    store: &mut StoreOpaque,
    funcref: *const VMFuncRef,
    values: &mut [ValRaw],
) -> Result<()> {
    // SAFETY: `funcref` belongs to this store (checked by callers) and lives as long as it.
    let (entry, callee_vmctx, type_id) =
        unsafe { ((*funcref).entry, (*funcref).vmctx, (*funcref).type_id) };
    let tramp = store.engine.trampolines(type_id)?;
    // SAFETY: the entry is an AtomicPtr in a module or host function owned by the store.
    let code = unsafe { (*entry).load(Ordering::Acquire) } as *const u8;
    let caller_vmctx = &mut *store.host_vmctx as *mut VMContext as *mut u8;

    // Give wasm a stack budget below the current stack pointer on the outermost entry (or
    // when this store has none yet), and restore the previous limit afterwards.
    let marker = 0u8;
    let sp = &marker as *const u8 as usize;
    let old_limit = store.limits.stack_limit;
    if traphandlers::entry_depth() == 0 || old_limit == 0 || old_limit > sp {
        store.limits.stack_limit = sp.saturating_sub(store.engine.0.config.max_wasm_stack);
    }
    let values_ptr = values.as_mut_ptr();
    let h2w = tramp.host_to_wasm;
    let r = catch_traps(|| {
        // SAFETY: the trampoline matches the callee's signature (same canonical type id) and
        // `values` has room for max(params, results) slots, as callers guarantee.
        unsafe { h2w(callee_vmctx, caller_vmctx, code, values_ptr) }
    });
    store.limits.stack_limit = old_limit;
    match r {
        Ok(()) => Ok(()),
        Err(UnwindReason::Trap(code, pc)) => Err(trap_error(code, pc)),
        Err(UnwindReason::HostError(e)) => Err(e),
        Err(UnwindReason::Panic(p)) => std::panic::resume_unwind(p),
    }
}

/// The error value of a trap: downcasts to [`Trap`], displays with its location.
pub(crate) fn trap_error(code: Trap, pc: Option<traphandlers::TrapPc>) -> anyhow::Error {
    let loc = match pc {
        Some(traphandlers::TrapPc {
            func_index,
            wasm_offset: Some(off),
        }) => {
            format!(" (in wasm function {func_index} at byte offset {off:#x})")
        }
        Some(traphandlers::TrapPc {
            func_index,
            wasm_offset: None,
        }) => format!(" (in wasm function {func_index})"),
        None => String::new(),
    };
    anyhow::Error::new(code).context(format!("wasm trap: {code}{loc}"))
}

impl Func {
    /// A host function of type `ty`, implemented by `f`.
    pub fn new<T: 'static>(
        mut store: impl AsContextMut<Data = T>,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Func {
        let closure: HostClosure<T> = Arc::new(f);
        let ctx = store.as_context_mut();
        Func::from_closure(&mut ctx.0.opaque, ty, closure)
            .expect("compiling a host function trampoline")
    }

    /// A host function from a Rust closure whose argument and result types are wasm types
    /// (`i32`, `i64`, `f32`, `f64`, `u128` for `v128`, `Option<Func>`, `Option<ExternRef>`), optionally
    /// taking a [`Caller`] first and returning a `Result`.
    pub fn wrap<T: 'static, Params, Results>(
        mut store: impl AsContextMut<Data = T>,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Func {
        let (ty, closure) = f.into_func();
        let ctx = store.as_context_mut();
        Func::from_closure(&mut ctx.0.opaque, ty, closure)
            .expect("compiling a host function trampoline")
    }

    pub(crate) fn from_closure<T: 'static>(
        store: &mut StoreOpaque,
        ty: FuncType,
        closure: HostClosure<T>,
    ) -> Result<Func> {
        let type_id = store.engine.type_id(&ty);
        let tramp = store.engine.trampolines(type_id)?;
        let mut data = Box::new(HostFuncData {
            ctx: VMHostFuncContext {
                func: host_shim::<T>,
                data: std::ptr::null_mut(),
            },
            entry: AtomicPtr::new(tramp.wasm_to_host as *mut u8),
            funcref: VMFuncRef {
                entry: std::ptr::null(),
                vmctx: std::ptr::null_mut(),
                type_id,
            },
            ty,
            closure: Box::new(closure),
            _trampolines: tramp,
        });
        let data_ptr = &mut *data as *mut HostFuncData;
        data.ctx.data = data_ptr as *mut u8;
        data.funcref.entry = &data.entry;
        data.funcref.vmctx = &mut data.ctx as *mut VMHostFuncContext as *mut u8;
        let ptr = &data.funcref as *const VMFuncRef as usize;
        store.host_funcs.push(data);
        Ok(Func {
            store: store.id,
            ptr,
        })
    }

    fn funcref(&self) -> &VMFuncRef {
        // SAFETY: `ptr` is a VMFuncRef owned by the store this handle belongs to (checked by
        // callers), alive as long as that store.
        unsafe { &*(self.ptr as *const VMFuncRef) }
    }

    /// The function's type.
    pub fn ty(&self, store: impl AsContext) -> FuncType {
        let ctx = store.as_context();
        ctx.0.opaque.check(self.store, "function");
        ctx.0.opaque.engine.func_type(self.funcref().type_id)
    }

    /// Calls the function. `results` must have one slot per result.
    pub fn call(
        &self,
        mut store: impl AsContextMut,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<()> {
        let ctx = store.as_context_mut();
        let store = &mut ctx.0.opaque;
        store.check(self.store, "function");
        let ty = store.engine.func_type(self.funcref().type_id);
        if params.len() != ty.params().len() {
            bail!(
                "function expects {} arguments, got {}",
                ty.params().len(),
                params.len()
            );
        }
        if results.len() != ty.results().len() {
            bail!(
                "function returns {} results, but {} result slots were given",
                ty.results().len(),
                results.len()
            );
        }
        let mut values = vec![ValRaw::default(); params.len().max(results.len())];
        for (i, (p, t)) in params.iter().zip(ty.params()).enumerate() {
            p.check_type(*t, &format!("argument {i}"))?;
            values[i] = p.to_raw(store);
        }
        invoke_raw(store, self.ptr as *const VMFuncRef, &mut values)?;
        for (i, t) in ty.results().iter().enumerate() {
            results[i] = Val::from_raw(values[i], *t, store);
        }
        Ok(())
    }

    /// A statically typed view of the function; fails if the types differ.
    pub fn typed<P: WasmParams, R: WasmResults>(
        &self,
        store: impl AsContext,
    ) -> Result<TypedFunc<P, R>> {
        let ty = self.ty(store);
        if !P::matches(ty.params()) || !R::matches(ty.results()) {
            bail!("function type mismatch: the function has type {ty}");
        }
        Ok(TypedFunc {
            func: *self,
            _marker: std::marker::PhantomData,
        })
    }
}

/// Calls a host closure with the values in `values`; the body of [`host_shim`].
///
/// # Safety
/// `ctx` must be the context of a live `HostFuncData` created in a `Store<T>`, and
/// `caller_vmctx` a context of that same store.
unsafe fn host_call<T: 'static>(
    ctx: *mut VMHostFuncContext,
    caller_vmctx: *mut u8,
    values: *mut ValRaw,
    len: usize,
) -> Result<()> {
    // SAFETY: per the function's contract.
    let (data, vmctx) = unsafe {
        (
            &*((*ctx).data as *const HostFuncData),
            &*(caller_vmctx as *const VMContext),
        )
    };
    // SAFETY: `store` of any context of a `Store<T>` points to its `StoreInner<T>`, which is
    // not otherwise borrowed while wasm runs.
    let store = unsafe { &mut *(vmctx.store as *mut StoreInner<T>) };
    // SAFETY: the trampoline passes an array of `len` slots.
    let values = unsafe { std::slice::from_raw_parts_mut(values, len) };
    let closure = data
        .closure
        .downcast_ref::<HostClosure<T>>()
        .expect("host function called from a store of another type");
    let params: Vec<Val> = data
        .ty
        .params()
        .iter()
        .enumerate()
        .map(|(i, t)| Val::from_raw(values[i], *t, &store.opaque))
        .collect();
    let mut results: Vec<Val> = data
        .ty
        .results()
        .iter()
        .map(|t| Val::default_for(*t))
        .collect();
    closure(
        Caller {
            store: &mut *store,
            instance: vmctx.instance as *mut InstanceData,
        },
        &params,
        &mut results,
    )?;
    for (i, (r, t)) in results.iter().zip(data.ty.results()).enumerate() {
        r.check_type(*t, &format!("host function result {i}"))?;
        values[i] = r.to_raw(&mut store.opaque);
    }
    Ok(())
}

/// The [`HostFunc`](spate_tiers::abi::HostFunc) of every host function created in a
/// `Store<T>`: runs the closure and turns an error or panic into an unwind to the host entry.
unsafe extern "C" fn host_shim<T: 'static>(
    ctx: *mut VMHostFuncContext,
    caller_vmctx: *mut u8,
    values: *mut ValRaw,
    len: usize,
) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: called by a wasm-to-host trampoline with a context created in `from_closure`.
        unsafe { host_call::<T>(ctx, caller_vmctx, values, len) }
    }));
    let reason = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => UnwindReason::HostError(e),
        Err(panic) => UnwindReason::Panic(panic),
    };
    // SAFETY: called from compiled code inside `catch_traps`; everything else in this frame
    // has been moved into `reason`.
    unsafe { raise(reason) }
}

/// A Rust type that corresponds to a wasm value type.
pub trait WasmTy: Sized {
    /// The wasm type.
    fn valtype() -> ValType;
    /// Converts to a value.
    fn into_val(self) -> Val;
    /// Converts from a value of type [`WasmTy::valtype`].
    fn from_val(v: Val) -> Self;
}

macro_rules! wasm_ty {
    ($t:ty, $vt:ident, $v:ident => $to:expr, $from:pat => $back:expr) => {
        impl WasmTy for $t {
            fn valtype() -> ValType {
                ValType::$vt
            }
            fn into_val(self) -> Val {
                let $v = self;
                $to
            }
            fn from_val(v: Val) -> Self {
                match v {
                    $from => $back,
                    other => panic!("expected {}, got {:?}", ValType::$vt, other),
                }
            }
        }
    };
}

wasm_ty!(i32, I32, v => Val::I32(v), Val::I32(x) => x);
wasm_ty!(i64, I64, v => Val::I64(v), Val::I64(x) => x);
wasm_ty!(u32, I32, v => Val::I32(v as i32), Val::I32(x) => x as u32);
wasm_ty!(u64, I64, v => Val::I64(v as i64), Val::I64(x) => x as u64);
wasm_ty!(f32, F32, v => Val::F32(v.to_bits()), Val::F32(x) => f32::from_bits(x));
wasm_ty!(f64, F64, v => Val::F64(v.to_bits()), Val::F64(x) => f64::from_bits(x));
wasm_ty!(u128, V128, v => Val::V128(v), Val::V128(x) => x);
wasm_ty!(Option<Func>, FuncRef, v => Val::FuncRef(v), Val::FuncRef(x) => x);
wasm_ty!(Option<ExternRef>, ExternRef, v => Val::ExternRef(v), Val::ExternRef(x) => x);

/// A tuple of parameters of a typed function.
pub trait WasmParams: Sized {
    /// Whether the tuple's types are `tys`.
    fn matches(tys: &[ValType]) -> bool;
    /// The wasm types.
    fn valtypes() -> Vec<ValType>;
    /// Converts to values.
    fn into_vals(self) -> Vec<Val>;
    /// Converts from values of the right types.
    fn from_vals(v: Vec<Val>) -> Self;
}

/// A tuple of results of a typed function (the same shapes as parameters).
pub trait WasmResults: WasmParams {}
impl<T: WasmParams> WasmResults for T {}

impl<A: WasmTy> WasmParams for A {
    fn matches(tys: &[ValType]) -> bool {
        tys == [A::valtype()]
    }
    fn valtypes() -> Vec<ValType> {
        vec![A::valtype()]
    }
    fn into_vals(self) -> Vec<Val> {
        vec![self.into_val()]
    }
    fn from_vals(v: Vec<Val>) -> Self {
        A::from_val(v.into_iter().next().expect("one value"))
    }
}

macro_rules! tuple_params {
    ($($t:ident),*) => {
        impl<$($t: WasmTy),*> WasmParams for ($($t,)*) {
            fn matches(tys: &[ValType]) -> bool {
                tys == Self::valtypes().as_slice()
            }
            fn valtypes() -> Vec<ValType> {
                vec![$($t::valtype()),*]
            }
            #[allow(non_snake_case)]
            fn into_vals(self) -> Vec<Val> {
                let ($($t,)*) = self;
                vec![$($t.into_val()),*]
            }
            #[allow(non_snake_case, unused_mut, unused_variables, clippy::unused_unit)]
            fn from_vals(v: Vec<Val>) -> Self {
                let mut it = v.into_iter();
                ($($t::from_val(it.next().expect("enough values")),)*)
            }
        }
    };
}

tuple_params!();
tuple_params!(A1);
tuple_params!(A1, A2);
tuple_params!(A1, A2, A3);
tuple_params!(A1, A2, A3, A4);
tuple_params!(A1, A2, A3, A4, A5);
tuple_params!(A1, A2, A3, A4, A5, A6);
tuple_params!(A1, A2, A3, A4, A5, A6, A7);
tuple_params!(A1, A2, A3, A4, A5, A6, A7, A8);

/// A function with statically known parameter and result types.
pub struct TypedFunc<P, R> {
    func: Func,
    _marker: std::marker::PhantomData<fn(P) -> R>,
}

impl<P, R> Clone for TypedFunc<P, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P, R> Copy for TypedFunc<P, R> {}

impl<P: WasmParams, R: WasmResults> TypedFunc<P, R> {
    /// Calls the function.
    pub fn call(&self, store: impl AsContextMut, params: P) -> Result<R> {
        let params = params.into_vals();
        let mut results: Vec<Val> = R::valtypes().into_iter().map(Val::default_for).collect();
        self.func.call(store, &params, &mut results)?;
        Ok(R::from_vals(results))
    }

    /// The untyped function.
    pub fn func(&self) -> Func {
        self.func
    }
}

/// What a host closure may return: a value or tuple of values, optionally in a `Result`.
pub trait WasmRet {
    /// The tuple of result values.
    type Results: WasmParams;
    /// Converts to a result.
    fn into_result(self) -> Result<Self::Results>;
}

impl<R: WasmParams> WasmRet for R {
    type Results = R;
    fn into_result(self) -> Result<R> {
        Ok(self)
    }
}

impl<R: WasmParams> WasmRet for Result<R> {
    type Results = R;
    fn into_result(self) -> Result<R> {
        self
    }
}

/// Closures that can become host functions; see [`Func::wrap`].
pub trait IntoFunc<T, Params, Results>: Send + Sync + 'static {
    /// The function's type and its closure over values.
    fn into_func(self) -> (FuncType, HostClosure<T>);
}

/// Marker for closures that take a [`Caller`] first.
pub struct WithCaller<P>(std::marker::PhantomData<P>);

macro_rules! into_func {
    ($($t:ident),*) => {
        impl<T, F, R, $($t: WasmTy + 'static),*> IntoFunc<T, ($($t,)*), R> for F
        where
            F: Fn($($t),*) -> R + Send + Sync + 'static,
            R: WasmRet + 'static,
        {
            #[allow(non_snake_case, unused_mut, unused_variables)]
            fn into_func(self) -> (FuncType, HostClosure<T>) {
                let ty = FuncType::new(vec![$($t::valtype()),*], <R::Results as WasmParams>::valtypes());
                (ty, Arc::new(move |_caller: Caller<'_, T>, params: &[Val], results: &mut [Val]| {
                    let mut it = params.iter().cloned();
                    let r = (self)($($t::from_val(it.next().expect("arity checked")),)*).into_result()?;
                    for (slot, v) in results.iter_mut().zip(r.into_vals()) {
                        *slot = v;
                    }
                    Ok(())
                }))
            }
        }

        impl<T, F, R, $($t: WasmTy + 'static),*> IntoFunc<T, WithCaller<($($t,)*)>, R> for F
        where
            F: Fn(Caller<'_, T>, $($t),*) -> R + Send + Sync + 'static,
            R: WasmRet + 'static,
        {
            #[allow(non_snake_case, unused_mut, unused_variables)]
            fn into_func(self) -> (FuncType, HostClosure<T>) {
                let ty = FuncType::new(vec![$($t::valtype()),*], <R::Results as WasmParams>::valtypes());
                (ty, Arc::new(move |caller: Caller<'_, T>, params: &[Val], results: &mut [Val]| {
                    let mut it = params.iter().cloned();
                    let r = (self)(caller, $($t::from_val(it.next().expect("arity checked")),)*).into_result()?;
                    for (slot, v) in results.iter_mut().zip(r.into_vals()) {
                        *slot = v;
                    }
                    Ok(())
                }))
            }
        }
    };
}

into_func!();
into_func!(A1);
into_func!(A1, A2);
into_func!(A1, A2, A3);
into_func!(A1, A2, A3, A4);
into_func!(A1, A2, A3, A4, A5);
into_func!(A1, A2, A3, A4, A5, A6);
into_func!(A1, A2, A3, A4, A5, A6, A7);
into_func!(A1, A2, A3, A4, A5, A6, A7, A8);
