//! Users, their roles, their API keys, and custom roles.

use chrono::{DateTime, Utc};
use promptvault_core::authz::{Action, Permission, Principal, Resource, RoleDef, Target, builtin};
use promptvault_core::{ApiKeyId, DeploymentModel, UserId};
use promptvault_store::{ApiKeyRecord, Expect, NewApiKey, NewUser, StoredRole, User, UserPatch};
use serde_json::{Value, json};

use super::{Missing, Registry, Result, ServiceError};
use crate::auth::{generate_token, hash_token, token_prefix};
use crate::secret::Secret;

/// A new user as an administrator describes them.
#[derive(Debug, Clone, Default)]
pub struct CreateUser {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub external_user_id: Option<String>,
    pub supabase_user_id: Option<uuid::Uuid>,
    pub did: Option<String>,
    pub at_protocol_handle: Option<String>,
    pub data: Option<Value>,
    pub roles: Vec<String>,
}

/// A key as created: the token is shown this once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKeyRecord,
    pub token: Secret,
}

pub(super) fn user_missing(id: UserId) -> ServiceError {
    ServiceError::not_found(Missing::User, format!("no user has id {id}"))
}

fn role_missing(name: &str) -> ServiceError {
    ServiceError::not_found(Missing::Role, format!("role {name:?} does not exist"))
}

fn self_target(owner: UserId) -> Target<'static> {
    Target { owner: Some(owner), ..Target::default() }
}

impl Registry {
    /// Every role name must exist (built in or stored).
    async fn check_roles(&self, roles: &[String]) -> Result<()> {
        for r in roles {
            if builtin::role_named(r).is_none() && self.store.get_role(r).await?.is_none() {
                let mut known: Vec<String> = builtin::NAMES.iter().map(|s| (*s).to_owned()).collect();
                known.extend(self.store.list_roles().await?.into_iter().map(|r| r.def.name));
                return Err(ServiceError::invalid(
                    "unknown_role",
                    format!("role {r:?} does not exist; roles are: {}", known.join(", ")),
                ));
            }
        }
        Ok(())
    }

    pub async fn create_user(&self, who: &Principal, input: CreateUser) -> Result<User> {
        self.authorize(who, Action::Create, Resource::User, &Target::default(), input.email.as_deref())
            .await?;
        for (field, v) in [
            ("email", &input.email),
            ("first_name", &input.first_name),
            ("last_name", &input.last_name),
            ("external_user_id", &input.external_user_id),
            ("did", &input.did),
            ("at_protocol_handle", &input.at_protocol_handle),
        ] {
            super::check_text(field, v.as_deref(), 320)?;
        }
        if let Some(e) = &input.email
            && (!e.contains('@') || e.trim() != e || e.is_empty())
        {
            return Err(ServiceError::invalid("invalid_email", format!("{e:?} is not an e-mail address")));
        }
        let mut roles = input.roles.clone();
        roles.sort();
        roles.dedup();
        self.check_roles(&roles).await?;
        let id = UserId::new();
        let label = input.email.clone().unwrap_or_else(|| id.to_string());
        let w = self.audited(
            who,
            "user.create",
            Resource::User,
            &id.to_string(),
            json!({"email": input.email, "roles": roles}),
        );
        let new = NewUser {
            id,
            email: input.email,
            first_name: input.first_name,
            last_name: input.last_name,
            roles,
            supabase_user_id: input.supabase_user_id,
            did: input.did,
            external_user_id: input.external_user_id,
            at_protocol_handle: input.at_protocol_handle,
            data: input.data,
            password_hash: None,
        };
        match self.store.create_user(new, w).await {
            Ok(u) => Ok(u),
            Err(e) => {
                let e = ServiceError::from(e);
                self.audit_failed(who, "user.create", Resource::User, &label, &e).await;
                Err(e)
            }
        }
    }

    pub async fn list_users(&self, who: &Principal) -> Result<Vec<User>> {
        self.authorize(who, Action::Read, Resource::User, &Target::default(), None).await?;
        let users = self.store.list_users().await?;
        self.audit_ok(who, "user.list", Resource::User, None, json!({"count": users.len()})).await;
        Ok(users)
    }

    pub async fn get_user(&self, who: &Principal, id: UserId) -> Result<User> {
        let name = id.to_string();
        self.authorize(who, Action::Read, Resource::User, &self_target(id), Some(&name)).await?;
        let u = self.store.get_user(id).await?.ok_or_else(|| user_missing(id))?;
        self.audit_ok(who, "user.read", Resource::User, Some(&name), Value::Null).await;
        Ok(u)
    }

    pub async fn update_user(&self, who: &Principal, id: UserId, patch: UserPatch) -> Result<User> {
        let name = id.to_string();
        self.authorize(who, Action::Update, Resource::User, &Target::default(), Some(&name)).await?;
        if patch.disabled == Some(true) && id == who.user_id {
            return Err(ServiceError::conflict("cannot_disable_self", "you cannot disable your own user"));
        }
        let w = self.audited(who, "user.update", Resource::User, &name, json!({"disabled": patch.disabled}));
        match self.store.update_user(id, patch, w).await {
            Ok(u) => {
                self.auth_changed();
                Ok(u)
            }
            Err(e) => {
                let e = not_found_as(e, || user_missing(id));
                self.audit_failed(who, "user.update", Resource::User, &name, &e).await;
                Err(e)
            }
        }
    }

    pub async fn delete_user(&self, who: &Principal, id: UserId) -> Result<()> {
        let name = id.to_string();
        self.authorize(who, Action::Delete, Resource::User, &Target::default(), Some(&name)).await?;
        if id == who.user_id {
            return Err(ServiceError::conflict("cannot_delete_self", "you cannot delete your own user"));
        }
        let w = self.audited(who, "user.delete", Resource::User, &name, Value::Null);
        if let Err(e) = self.store.delete_user(id, w).await {
            let e = not_found_as(e, || user_missing(id));
            self.audit_failed(who, "user.delete", Resource::User, &name, &e).await;
            return Err(e);
        }
        self.auth_changed();
        Ok(())
    }

    /// Replaces the roles a user holds. Nobody changes their own roles.
    pub async fn set_user_roles(&self, who: &Principal, id: UserId, roles: Vec<String>) -> Result<User> {
        let name = id.to_string();
        self.authorize(who, Action::Update, Resource::User, &Target::default(), Some(&name)).await?;
        if id == who.user_id {
            return Err(ServiceError::conflict(
                "cannot_change_own_roles",
                "you cannot change your own roles",
            ));
        }
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        self.check_roles(&roles).await?;
        let w = self.audited(who, "user.update", Resource::User, &name, json!({"roles": roles}));
        match self.store.set_user_roles(id, roles, w).await {
            Ok(u) => {
                self.auth_changed();
                Ok(u)
            }
            Err(e) => {
                let e = not_found_as(e, || user_missing(id));
                self.audit_failed(who, "user.update", Resource::User, &name, &e).await;
                Err(e)
            }
        }
    }

    /// Makes a key for `user` (yourself by default); the token is returned once.
    pub async fn create_key(
        &self,
        who: &Principal,
        user: Option<UserId>,
        name: String,
        expires_at: Option<DateTime<Utc>>,
        deployment: Option<DeploymentModel>,
    ) -> Result<CreatedKey> {
        let owner = user.unwrap_or(who.user_id);
        let label = format!("{owner}/{name}");
        self.authorize(who, Action::Create, Resource::Key, &self_target(owner), Some(&label)).await?;
        super::check_text("name", Some(&name), 200)?;
        if name.trim().is_empty() {
            return Err(ServiceError::invalid("invalid_request", "a key needs a name"));
        }
        if expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(ServiceError::invalid("invalid_request", "expires_at must be in the future"));
        }
        if self.store.get_user(owner).await?.is_none() {
            return Err(user_missing(owner));
        }
        let token = generate_token();
        let new = NewApiKey {
            id: ApiKeyId::new(),
            user_id: owner,
            name,
            prefix: token_prefix(token.expose()),
            secret_hash: hash_token(token.expose()),
            expires_at: expires_at.map(promptvault_core::model::truncate_to_micros),
            deployment: deployment.map(|d| d.as_str().to_owned()),
        };
        let w = self.audited(
            who,
            "key.create",
            Resource::Key,
            &new.id.to_string(),
            json!({"user_id": owner.to_string(), "prefix": new.prefix, "expires_at": expires_at}),
        );
        let key = self.store.create_api_key(new, w).await?;
        Ok(CreatedKey { key, token })
    }

    pub async fn list_keys(&self, who: &Principal, user: Option<UserId>) -> Result<Vec<ApiKeyRecord>> {
        let target = user.map_or_else(Target::default, self_target);
        self.authorize(who, Action::Read, Resource::Key, &target, None).await?;
        let keys = self.store.list_api_keys(user).await?;
        self.audit_ok(who, "key.list", Resource::Key, None, json!({"count": keys.len()})).await;
        Ok(keys)
    }

    /// Revokes a key at once (the authentication cache is dropped).
    pub async fn revoke_key(&self, who: &Principal, id: ApiKeyId) -> Result<ApiKeyRecord> {
        let name = id.to_string();
        let Some(key) = self.store.get_api_key(id).await? else {
            // Only someone who may revoke any key learns that it does not exist.
            self.authorize(who, Action::Delete, Resource::Key, &Target::default(), Some(&name)).await?;
            return Err(ServiceError::not_found(Missing::Key, format!("no API key has id {id}")));
        };
        self.authorize(who, Action::Delete, Resource::Key, &self_target(key.user_id), Some(&name)).await?;
        let w = self.audited(who, "key.delete", Resource::Key, &name, json!({"prefix": key.prefix}));
        let revoked = self.store.revoke_api_key(id, Self::now(), w).await?;
        self.auth_changed();
        Ok(revoked)
    }

    pub async fn list_roles(&self, who: &Principal) -> Result<Vec<(RoleDef, Option<StoredRole>)>> {
        self.authorize(who, Action::Read, Resource::Role, &Target::default(), None).await?;
        let mut out: Vec<(RoleDef, Option<StoredRole>)> =
            builtin::roles().into_iter().map(|r| (r, None)).collect();
        out.extend(self.store.list_roles().await?.into_iter().map(|s| (s.def.clone(), Some(s))));
        Ok(out)
    }

    pub async fn get_role(&self, who: &Principal, name: &str) -> Result<(RoleDef, Option<StoredRole>)> {
        self.authorize(who, Action::Read, Resource::Role, &Target::default(), Some(name)).await?;
        if let Some(r) = builtin::role_named(name) {
            return Ok((r, None));
        }
        let s = self.store.get_role(name).await?.ok_or_else(|| role_missing(name))?;
        Ok((s.def.clone(), Some(s)))
    }

    pub async fn create_role(
        &self,
        who: &Principal,
        name: String,
        description: String,
        permissions: Vec<Permission>,
    ) -> Result<StoredRole> {
        self.authorize(who, Action::Create, Resource::Role, &Target::default(), Some(&name)).await?;
        promptvault_core::Role::parse(&name)
            .map_err(|e| ServiceError::invalid("invalid_name", e.to_string()))?;
        if builtin::role_named(&name).is_some() {
            return Err(ServiceError::conflict("role_exists", format!("{name:?} is a built-in role")));
        }
        super::check_text("description", Some(&description), 2_000)?;
        let def = RoleDef { name: name.clone(), description, permissions, builtin: false };
        let w =
            self.audited(who, "role.create", Resource::Role, &name, json!({"permissions": def.permissions}));
        Ok(self.store.create_role(def, w).await?)
    }

    pub async fn update_role(
        &self,
        who: &Principal,
        name: &str,
        expect: promptvault_core::model::Revision,
        description: String,
        permissions: Vec<Permission>,
    ) -> Result<StoredRole> {
        self.authorize(who, Action::Update, Resource::Role, &Target::default(), Some(name)).await?;
        if builtin::role_named(name).is_some() {
            return Err(ServiceError::conflict(
                "role_builtin",
                format!("built-in role {name:?} cannot be changed"),
            ));
        }
        super::check_text("description", Some(&description), 2_000)?;
        let w = self.audited(who, "role.update", Resource::Role, name, json!({"permissions": permissions}));
        let r = self
            .store
            .update_role(name, Expect::Revision(expect), description, permissions, w)
            .await
            .map_err(|e| not_found_as(e, || role_missing(name)))?;
        self.auth_changed();
        Ok(r)
    }

    pub async fn delete_role(&self, who: &Principal, name: &str) -> Result<()> {
        self.authorize(who, Action::Delete, Resource::Role, &Target::default(), Some(name)).await?;
        if builtin::role_named(name).is_some() {
            return Err(ServiceError::conflict(
                "role_builtin",
                format!("built-in role {name:?} cannot be deleted"),
            ));
        }
        let w = self.audited(who, "role.delete", Resource::Role, name, Value::Null);
        self.store.delete_role(name, w).await.map_err(|e| not_found_as(e, || role_missing(name)))?;
        self.auth_changed();
        Ok(())
    }
}

pub(super) fn not_found_as(
    e: promptvault_store::StoreError,
    missing: impl FnOnce() -> ServiceError,
) -> ServiceError {
    match e {
        promptvault_store::StoreError::NotFound(_) => missing(),
        other => other.into(),
    }
}
