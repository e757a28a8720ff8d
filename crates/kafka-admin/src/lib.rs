//! SCRAM users and ACLs on a Kafka broker, the two admin calls rust-rdkafka
//! does not wrap, made through librdkafka's C API on an rdkafka client
//! (`rd_kafka_AlterUserScramCredentials`, `rd_kafka_CreateAcls`). Both are
//! idempotent on the broker: upserting a user sets its password again,
//! creating an ACL that exists changes nothing.
//!
//! The calls block until the broker answers or the timeout passes; call them
//! from a thread that may block (the `omnisaga kafka provision` command).

#![allow(unsafe_code)]

use std::{
    ffi::{CStr, CString},
    os::raw::c_char,
    ptr,
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};
use rdkafka::{admin::AdminClient, bindings as rd, client::ClientContext};

/// What an ACL is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Topic,
    Group,
}

/// How an ACL's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternType {
    /// The resource of exactly this name.
    Literal,
    /// Every resource whose name starts with it.
    Prefixed,
}

/// What an ACL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Describe,
    Create,
}

/// One ALLOW rule for `principal` (`User:<name>`), from any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    pub principal: String,
    pub operation: Operation,
}

/// SCRAM iterations: Kafka's tools' default is 4096; twice that costs the
/// broker a few milliseconds per login, which happens once per connection.
const ITERATIONS: i32 = 8192;

/// Creates (or sets the password of) each `(user, password)` as a
/// SCRAM-SHA-512 user. Fails naming every user the broker refused.
pub fn upsert_scram_users<C: ClientContext>(
    admin: &AdminClient<C>,
    users: &[(String, String)],
    timeout: Duration,
) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let names: Vec<CString> = users
        .iter()
        .map(|(user, _)| CString::new(user.as_str()).context("a user name holds a NUL byte"))
        .collect::<Result<_>>()?;
    let rk = admin.inner().native_ptr();
    let mut alterations = Vec::with_capacity(users.len());
    for ((_, password), name) in users.iter().zip(&names) {
        // SAFETY: `name` is a NUL-terminated string and `password` a byte
        // slice, both alive for the call, which copies them; a NULL salt of
        // size 0 asks librdkafka for a random one.
        let alteration = unsafe {
            rd::rd_kafka_UserScramCredentialUpsertion_new(
                name.as_ptr(),
                rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512,
                ITERATIONS,
                password.as_ptr(),
                password.len(),
                ptr::null(),
                0,
            )
        };
        ensure!(
            !alteration.is_null(),
            "librdkafka refused the SCRAM user {name:?}"
        );
        alterations.push(alteration);
    }
    let call = Call::new(
        rk,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS,
        timeout,
    )?;
    // SAFETY: `rk` is the live client's handle, `alterations` holds valid
    // alterations made above, the options and queue belong to `call`. The
    // request copies the alterations, which are destroyed right after.
    unsafe {
        rd::rd_kafka_AlterUserScramCredentials(
            rk,
            alterations.as_mut_ptr(),
            alterations.len(),
            call.options,
            call.queue,
        );
        rd::rd_kafka_UserScramCredentialAlteration_destroy_array(alterations.as_mut_ptr(), alterations.len());
    }
    let event = call.wait("AlterUserScramCredentials")?;
    let mut refused = Vec::new();
    // SAFETY: `event` is the request's result event, alive until dropped
    // after this block; the responses it holds live as long as it does.
    unsafe {
        let result = rd::rd_kafka_event_AlterUserScramCredentials_result(event.0);
        ensure!(
            !result.is_null(),
            "the broker's answer is not an AlterUserScramCredentials result"
        );
        let mut count = 0;
        let responses = rd::rd_kafka_AlterUserScramCredentials_result_responses(result, &mut count);
        for i in 0..count {
            let response = *responses.add(i);
            let error = rd::rd_kafka_AlterUserScramCredentials_result_response_error(response);
            if let Some(message) = error_message(error) {
                let user = text(rd::rd_kafka_AlterUserScramCredentials_result_response_user(
                    response,
                ));
                refused.push(format!("{user}: {message}"));
            }
        }
    }
    if !refused.is_empty() {
        bail!("the broker refused SCRAM users: {}", refused.join("; "));
    }
    Ok(())
}

/// Creates `acls` (ALLOW, any host). Fails naming every ACL the broker refused.
pub fn create_acls<C: ClientContext>(admin: &AdminClient<C>, acls: &[Acl], timeout: Duration) -> Result<()> {
    if acls.is_empty() {
        return Ok(());
    }
    let rk = admin.inner().native_ptr();
    let host = CString::new("*").expect("no NUL");
    let mut bindings = Vec::with_capacity(acls.len());
    let mut errstr = [0 as c_char; 512];
    for acl in acls {
        let name = CString::new(acl.name.as_str()).context("a resource name holds a NUL byte")?;
        let principal = CString::new(acl.principal.as_str()).context("a principal holds a NUL byte")?;
        // SAFETY: the strings are NUL-terminated and alive for the call,
        // which copies them; `errstr` is a writable buffer of the size given.
        let binding = unsafe {
            rd::rd_kafka_AclBinding_new(
                match acl.resource_type {
                    ResourceType::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                    ResourceType::Group => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
                },
                name.as_ptr(),
                match acl.pattern {
                    PatternType::Literal => {
                        rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL
                    }
                    PatternType::Prefixed => {
                        rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_PREFIXED
                    }
                },
                principal.as_ptr(),
                host.as_ptr(),
                match acl.operation {
                    Operation::Read => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_READ,
                    Operation::Write => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE,
                    Operation::Describe => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DESCRIBE,
                    Operation::Create => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_CREATE,
                },
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if binding.is_null() {
            // SAFETY: librdkafka wrote a NUL-terminated message into `errstr`
            // (zeroed before, so it is terminated even if it wrote nothing).
            let why = unsafe { text(errstr.as_ptr()) };
            // SAFETY: the bindings made so far are valid and owned here.
            unsafe { rd::rd_kafka_AclBinding_destroy_array(bindings.as_mut_ptr(), bindings.len()) };
            bail!("librdkafka refused the ACL {acl:?}: {why}");
        }
        bindings.push(binding);
    }
    let call = match Call::new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS, timeout) {
        Ok(call) => call,
        Err(e) => {
            // SAFETY: the bindings are valid and owned here.
            unsafe { rd::rd_kafka_AclBinding_destroy_array(bindings.as_mut_ptr(), bindings.len()) };
            return Err(e);
        }
    };
    // SAFETY: as for the SCRAM users: a live handle, valid bindings copied by
    // the request and destroyed after it, options and queue of `call`.
    unsafe {
        rd::rd_kafka_CreateAcls(
            rk,
            bindings.as_mut_ptr(),
            bindings.len(),
            call.options,
            call.queue,
        );
        rd::rd_kafka_AclBinding_destroy_array(bindings.as_mut_ptr(), bindings.len());
    }
    let event = call.wait("CreateAcls")?;
    let mut refused = Vec::new();
    // SAFETY: `event` is the request's result event; its results live as
    // long as it does, and come in the order the ACLs were given.
    unsafe {
        let result = rd::rd_kafka_event_CreateAcls_result(event.0);
        ensure!(
            !result.is_null(),
            "the broker's answer is not a CreateAcls result"
        );
        let mut count = 0;
        let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut count);
        for (i, acl) in acls.iter().enumerate().take(count) {
            if let Some(message) = error_message(rd::rd_kafka_acl_result_error(*results.add(i))) {
                refused.push(format!(
                    "{} {:?} {}: {message}",
                    acl.principal, acl.operation, acl.name
                ));
            }
        }
    }
    if !refused.is_empty() {
        bail!("the broker refused ACLs: {}", refused.join("; "));
    }
    Ok(())
}

/// One admin request's options and the queue its answer arrives on,
/// destroyed when dropped.
struct Call {
    options: *mut rd::rd_kafka_AdminOptions_t,
    queue: *mut rd::rd_kafka_queue_t,
    timeout: Duration,
}

impl Call {
    fn new(rk: *mut rd::rd_kafka_t, op: rd::rd_kafka_admin_op_t, timeout: Duration) -> Result<Self> {
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut errstr = [0 as c_char; 512];
        // SAFETY: `rk` is a live client handle; the options and queue made
        // here are owned by the returned value and destroyed in `drop`.
        unsafe {
            let options = rd::rd_kafka_AdminOptions_new(rk, op);
            ensure!(!options.is_null(), "librdkafka made no admin options");
            let call = Self {
                options,
                queue: rd::rd_kafka_queue_new(rk),
                timeout,
            };
            let err = rd::rd_kafka_AdminOptions_set_request_timeout(
                options,
                millis,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            ensure!(
                err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
                "request timeout: {}",
                text(errstr.as_ptr())
            );
            Ok(call)
        }
    }

    /// Waits for the answer (a little past the request's own timeout, which
    /// answers with an error event of its own).
    fn wait(&self, what: &str) -> Result<Event> {
        let millis = i32::try_from((self.timeout + Duration::from_secs(5)).as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the queue is live while `self` is.
        let event = unsafe { rd::rd_kafka_queue_poll(self.queue, millis) };
        ensure!(
            !event.is_null(),
            "{what}: no answer from the broker within {:?}",
            self.timeout
        );
        let event = Event(event);
        // SAFETY: `event` is a live event; its error string lives as long as it.
        unsafe {
            let err = rd::rd_kafka_event_error(event.0);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                bail!(
                    "{what} failed: {}",
                    text(rd::rd_kafka_event_error_string(event.0))
                );
            }
        }
        Ok(event)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // SAFETY: both were made in `new`, are owned here and dropped once.
        unsafe {
            rd::rd_kafka_queue_destroy(self.queue);
            rd::rd_kafka_AdminOptions_destroy(self.options);
        }
    }
}

/// A result event, destroyed when dropped.
struct Event(*mut rd::rd_kafka_event_t);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: the event came from `rd_kafka_queue_poll`, is owned here and dropped once.
        unsafe { rd::rd_kafka_event_destroy(self.0) };
    }
}

/// The message of `error`, or `None` when it is no error.
///
/// # Safety
/// `error` is NULL or a live `rd_kafka_error_t`.
unsafe fn error_message(error: *const rd::rd_kafka_error_t) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: a live error, as the caller promises; its string lives as long as it.
    unsafe {
        if rd::rd_kafka_error_code(error) == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        Some(text(rd::rd_kafka_error_string(error)))
    }
}

/// A C string as text (`?` for NULL).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string alive for the call.
unsafe fn text(s: *const c_char) -> String {
    if s.is_null() {
        return "?".into();
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

/// Raises a fatal error in `client` as the idempotent producer does when
/// the broker breaks its sequence (`OUT_OF_ORDER_SEQUENCE_NUMBER`), through
/// librdkafka's test hook (`rd_kafka_test_fatal_error`): for tests of what a
/// service does after one, which no broker raises at will.
pub fn raise_fatal_error<C: ClientContext>(client: &rdkafka::client::Client<C>, reason: &str) -> Result<()> {
    let reason = CString::new(reason).context("a reason without NUL bytes")?;
    // SAFETY: the client's handle is valid while `client` lives, and
    // librdkafka copies `reason` before it returns.
    let err = unsafe {
        rd::rd_kafka_test_fatal_error(
            client.native_ptr(),
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            reason.as_ptr(),
        )
    };
    ensure!(
        err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
        "librdkafka raised no fatal error: {err:?}"
    );
    Ok(())
}
