//! Nacos's auth API (`/nacos/v1/auth/users`, `/roles`, `/permissions`), mapped onto
//! Cairn's users, named roles and grants, so that Nacos operators' scripts and console
//! keep working. Nacos's `ROLE_ADMIN` is Cairn's global admin role; a permission is a
//! grant to a role over `namespace:group:dataId` (`*` wildcards), with `r` read and `w`
//! or `rw` write (Cairn's write includes read).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cairn_core::grant::{Level, Scope};
use cairn_core::{Namespace, RoleName, Username};
use cairn_store::Subject;
use serde_json::{json, Value};

use super::common::{page_json, page_of};
use super::error::Result;
use super::{authenticate, tenant_of, NacosError, Params};
use crate::api::{ClientAddr, SharedState};
use crate::auth::{AuthError, Caller, Role};
use crate::settings::Secret;

/// Nacos's name for the global admin role.
const ROLE_ADMIN: &str = "ROLE_ADMIN";

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/nacos/v1/auth/users",
            get(list_users)
                .post(create_user)
                .put(update_user)
                .delete(delete_user),
        )
        .route("/nacos/v1/auth/users/search", get(search_users))
        .route(
            "/nacos/v1/auth/roles",
            get(list_roles).post(add_role).delete(delete_role),
        )
        .route("/nacos/v1/auth/roles/search", get(search_roles))
        .route(
            "/nacos/v1/auth/permissions",
            get(list_permissions)
                .post(add_permission)
                .delete(delete_permission),
        )
}

type Answer = Result<Response>;

/// Nacos's `RestResult` for a change that went through.
fn done(message: String) -> Answer {
    Ok(Json(json!({ "code": 200, "message": message, "data": null })).into_response())
}

/// An auth failure in Nacos's terms: refusals as Nacos's 403, mistakes as its 400 text.
fn refused(e: AuthError, params: &Params) -> NacosError {
    match e {
        AuthError::Forbidden => NacosError::Forbidden {
            path: params.path().to_owned(),
        },
        AuthError::Denied(denied) => NacosError::Service(denied.into()),
        AuthError::Store(inner) => {
            NacosError::Service(crate::service::ServiceError::store_failure(inner))
        }
        AuthError::UserExists(user) => NacosError::invalid(format!("user '{user}' already exist!")),
        AuthError::UserNotFound(user) => NacosError::invalid(format!("user '{user}' not exist!")),
        other => NacosError::invalid(other.to_string()),
    }
}

async fn admin(state: &SharedState, headers: &HeaderMap, params: &Params) -> Result<Caller> {
    let caller = authenticate(state, headers, params).await?;
    if caller.role != Role::Admin {
        return Err(NacosError::Forbidden {
            path: params.path().to_owned(),
        });
    }
    Ok(caller)
}

fn username(params: &Params, name: &str) -> Result<Username> {
    let text = params.required(name)?;
    Username::parse(text).map_err(|e| NacosError::invalid(e.to_string()))
}

/// One page of `items`, as Nacos pages them.
fn paged(params: &Params, items: Vec<Value>) -> Answer {
    let page = page_of(params)?;
    let total = items.len() as u64;
    let start = (page.number as usize - 1).saturating_mul(page.size as usize);
    let items = items
        .into_iter()
        .skip(start)
        .take(page.size as usize)
        .collect();
    Ok(Json(page_json(total, page, items)).into_response())
}

/// GET: a page of users (`search=blur` with `username` filters). Nacos answers the
/// password hashes too; Cairn never lets them out.
async fn list_users(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    admin(&state, &headers, &params).await?;
    let filter = params.get("username").unwrap_or("");
    let blur = params.get("search") == Some("blur");
    let users = state
        .auth
        .list_users()
        .await
        .map_err(|e| refused(e, &params))?;
    let items = users
        .iter()
        .filter(|u| {
            filter.is_empty()
                || if blur {
                    u.username.as_str().contains(filter)
                } else {
                    u.username.as_str() == filter
                }
        })
        .map(|u| json!({ "username": u.username.as_str(), "password": "" }))
        .collect();
    paged(&params, items)
}

/// GET: the user names containing `username`, for the console's pickers.
async fn search_users(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    admin(&state, &headers, &params).await?;
    let part = params.get("username").unwrap_or("");
    let users = state
        .auth
        .list_users()
        .await
        .map_err(|e| refused(e, &params))?;
    let names: Vec<&str> = users
        .iter()
        .map(|u| u.username.as_str())
        .filter(|n| n.contains(part))
        .collect();
    Ok(Json(names).into_response())
}

/// POST `username`, `password`: a new user, with no access until granted some.
async fn create_user(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = admin(&state, &headers, &params).await?;
    let user = username(&params, "username")?;
    let password = Secret::from(params.required("password")?.to_owned());
    let result = state.auth.add_user(&user, &password, Role::User).await;
    let by = crate::api::actor_via("nacos", &caller, &addr);
    state
        .auth
        .audit()
        .done(
            &by,
            "user.create",
            "",
            format!("user {user} (user)"),
            result,
        )
        .map_err(|e| refused(e, &params))?;
    done("create user ok!".to_owned())
}

/// PUT `username`, `newPassword`: an admin resets another user's password. Changing
/// one's own needs the current password, which this API does not carry.
async fn update_user(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let user = username(&params, "username")?;
    if caller.username == user {
        return Err(NacosError::invalid(
            "changing your own password needs your current password: use \
             PUT /api/v1/users/{name}/password with current_password, or `cairn passwd`",
        ));
    }
    if caller.role != Role::Admin {
        return Err(NacosError::Forbidden {
            path: params.path().to_owned(),
        });
    }
    let password = Secret::from(params.required("newPassword")?.to_owned());
    let result = state.auth.set_password(&user, &password).await;
    let by = crate::api::actor_via("nacos", &caller, &addr);
    state
        .auth
        .audit()
        .done(&by, "user.password", "", format!("user {user}"), result)
        .map_err(|e| refused(e, &params))?;
    done("update user ok!".to_owned())
}

/// DELETE `username`.
async fn delete_user(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = admin(&state, &headers, &params).await?;
    let user = username(&params, "username")?;
    let result = state.auth.delete_user(&user).await;
    let by = crate::api::actor_via("nacos", &caller, &addr);
    state
        .auth
        .audit()
        .done(&by, "user.delete", "", format!("user {user}"), result)
        .map_err(|e| refused(e, &params))?;
    done("delete user ok!".to_owned())
}

/// GET: a page of role bindings `{role, username}` (filtered by `username` or `role`);
/// global admins appear under `ROLE_ADMIN`.
async fn list_roles(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    admin(&state, &headers, &params).await?;
    let users = state
        .auth
        .list_users()
        .await
        .map_err(|e| refused(e, &params))?;
    let mut bindings: Vec<(String, String)> = users
        .iter()
        .filter(|u| u.role == Role::Admin)
        .map(|u| (ROLE_ADMIN.to_owned(), u.username.to_string()))
        .collect();
    let policy = state.auth.policy();
    bindings.extend(
        policy
            .members
            .iter()
            .map(|m| (m.role.to_string(), m.username.to_string())),
    );
    let (user, role) = (params.get("username"), params.get("role"));
    let items = bindings
        .into_iter()
        .filter(|(r, u)| user.is_none_or(|x| x == u) && role.is_none_or(|x| x == r))
        .map(|(role, username)| json!({ "role": role, "username": username }))
        .collect();
    paged(&params, items)
}

/// GET: the role names containing `role`.
async fn search_roles(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    admin(&state, &headers, &params).await?;
    let part = params.get("role").unwrap_or("");
    let policy = state.auth.policy();
    let mut names: Vec<String> = std::iter::once(ROLE_ADMIN.to_owned())
        .chain(policy.members.iter().map(|m| m.role.to_string()))
        .chain(policy.grants.iter().filter_map(|g| match &g.subject {
            Subject::Role(r) => Some(r.to_string()),
            Subject::User(_) => None,
        }))
        .filter(|n| n.contains(part))
        .collect();
    names.sort();
    names.dedup();
    Ok(Json(names).into_response())
}

fn role_name(params: &Params) -> Result<RoleName> {
    RoleName::parse(params.required("role")?).map_err(|e| NacosError::invalid(e.to_string()))
}

/// POST `role`, `username`: binds a user to a role; `ROLE_ADMIN` makes them an admin.
async fn add_role(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = admin(&state, &headers, &params).await?;
    let role = params.required("role")?;
    let user = username(&params, "username")?;
    if role == ROLE_ADMIN {
        let by = crate::api::actor_via("nacos", &caller, &addr);
        let set = state.auth.set_role(&user, Role::Admin).await;
        state
            .auth
            .audit()
            .done(&by, "user.role", "", format!("user {user} -> admin"), set)
            .map_err(|e| refused(e, &params))?;
    } else {
        let role = role_name(&params)?;
        state
            .auth
            .add_to_role(
                &crate::api::actor_via("nacos", &caller, &addr),
                &role,
                &user,
            )
            .await
            .map_err(|e| refused(e, &params))?;
    }
    done("add role ok!".to_owned())
}

/// DELETE `role` [`username`]: unbinds one user, or removes the role with its bindings
/// and permissions.
async fn delete_role(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = admin(&state, &headers, &params).await?;
    let role = params.required("role")?;
    let user = params
        .get("username")
        .map(|u| Username::parse(u).map_err(|e| NacosError::invalid(e.to_string())))
        .transpose()?;
    match (role == ROLE_ADMIN, user) {
        (true, Some(user)) => {
            let by = crate::api::actor_via("nacos", &caller, &addr);
            let set = state.auth.set_role(&user, Role::User).await;
            state
                .auth
                .audit()
                .done(&by, "user.role", "", format!("user {user} -> user"), set)
                .map_err(|e| refused(e, &params))?;
            done(format!("delete role of user {user} ok!"))
        }
        (true, None) => Err(NacosError::invalid(
            "ROLE_ADMIN cannot be deleted; remove it from users one at a time",
        )),
        (false, Some(user)) => {
            let role = role_name(&params)?;
            state
                .auth
                .remove_from_role(
                    &crate::api::actor_via("nacos", &caller, &addr),
                    &role,
                    &user,
                )
                .await
                .map_err(|e| refused(e, &params))?;
            done(format!("delete role of user {user} ok!"))
        }
        (false, None) => {
            let role = role_name(&params)?;
            state
                .auth
                .delete_role(&crate::api::actor_via("nacos", &caller, &addr), &role)
                .await
                .map_err(|e| refused(e, &params))?;
            done("delete role ok!".to_owned())
        }
    }
}

/// A Nacos resource, `namespace:group:dataId` (`*` wildcards, an empty namespace is
/// `public`, a data id may carry Nacos's `config/` prefix), as a scope.
fn scope_of(resource: &str) -> Result<Scope> {
    let mut parts = resource.splitn(3, ':');
    let namespace = parts.next().unwrap_or_default();
    let group = parts.next().unwrap_or("*");
    let data_id = parts.next().unwrap_or("*");
    let data_id = data_id.strip_prefix("config/").unwrap_or(data_id);
    let namespace = if namespace.is_empty() {
        Namespace::PUBLIC
    } else {
        namespace
    };
    Scope::parse(namespace, group, data_id).map_err(|e| {
        NacosError::invalid(format!(
            "resource {resource:?} is not namespace:group:dataId: {e}"
        ))
    })
}

/// A scope as Nacos writes a resource.
fn resource_of(scope: &Scope) -> String {
    let namespace = Namespace::parse(scope.namespace.as_str())
        .map(|ns| tenant_of(&ns).to_owned())
        .unwrap_or_else(|_| scope.namespace.as_str().to_owned());
    format!(
        "{namespace}:{}:{}",
        scope.group.as_str(),
        scope.data_id.as_str()
    )
}

fn level_of(action: &str) -> Result<Level> {
    match action {
        "r" => Ok(Level::Read),
        // Nacos's write-only has no Cairn equivalent: a writer may read what it writes.
        "w" | "rw" => Ok(Level::Write),
        other => Err(NacosError::invalid(format!(
            "action {other:?} is not r, w or rw"
        ))),
    }
}

fn action_of(level: Level) -> &'static str {
    match level {
        Level::None => "none",
        Level::Read | Level::ReadSecret => "r",
        Level::Write | Level::Approve | Level::Admin => "rw",
    }
}

/// GET: a page of permissions `{role, resource, action}` (of `role` if given).
async fn list_permissions(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    admin(&state, &headers, &params).await?;
    let role = params.get("role");
    let policy = state.auth.policy();
    let items = policy
        .grants
        .iter()
        .filter_map(|g| match &g.subject {
            Subject::Role(r) if role.is_none_or(|x| x == r.as_str()) => Some(json!({
                "role": r.as_str(),
                "resource": resource_of(&g.scope),
                "action": action_of(g.level),
            })),
            _ => None,
        })
        .collect();
    paged(&params, items)
}

/// POST `role`, `resource`, `action`.
async fn add_permission(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    if params.required("role")? == ROLE_ADMIN {
        return Err(NacosError::invalid("ROLE_ADMIN may already do everything"));
    }
    let role = role_name(&params)?;
    let scope = scope_of(params.required("resource")?)?;
    let level = level_of(params.required("action")?)?;
    state
        .auth
        .grant(
            &crate::api::actor_via("nacos", &caller, &addr),
            Subject::Role(role),
            scope,
            level,
        )
        .await
        .map_err(|e| refused(e, &params))?;
    done("add permission ok!".to_owned())
}

/// DELETE `role`, `resource`, `action`.
async fn delete_permission(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let role = role_name(&params)?;
    let scope = scope_of(params.required("resource")?)?;
    level_of(params.required("action")?)?;
    state
        .auth
        .revoke(
            &crate::api::actor_via("nacos", &caller, &addr),
            &Subject::Role(role),
            &scope,
        )
        .await
        .map_err(|e| refused(e, &params))?;
    done("delete permission ok!".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_read_as_nacos_writes_them() {
        assert_eq!(scope_of("dev:*:*").unwrap().to_string(), "dev:*:*");
        assert_eq!(scope_of(":*:*").unwrap().to_string(), "public:*:*");
        assert_eq!(
            scope_of("dev:app:config/db.yaml").unwrap().to_string(),
            "dev:app:db.yaml"
        );
        assert_eq!(scope_of("dev").unwrap().to_string(), "dev:*:*");
        assert!(scope_of("dev:a/b:*").is_err());
        assert_eq!(resource_of(&scope_of(":g:*").unwrap()), ":g:*");
        assert_eq!(level_of("w").unwrap(), Level::Write);
        assert!(level_of("x").is_err());
    }
}
