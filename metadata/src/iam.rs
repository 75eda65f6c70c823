//! IAM state: users, access keys, groups, policies and settings, one record each in the `iam`
//! column family under `kind byte + name`, plus a generation counter that every change bumps.
//!
//! The gateway validates documents and seals secrets; this module keeps the references between
//! records sound (a key's user exists, a deleted user takes its keys along, an attached policy
//! cannot be deleted), so no gateway ever loads a dangling reference.

use coffer_proto::Message;
use coffer_proto::pb::metadata::{IamEntity, IamKind, iam_entity::Entity};
use rocksdb::WriteBatch;

use crate::error::MetadataError;
use crate::store::{Cf, Store, decode};

/// The `meta` key of the generation counter (u64, big-endian).
const GENERATION_KEY: &[u8] = b"iam_generation";
/// IAM state is loaded whole by every gateway; past this many records something is wrong.
pub const MAX_ENTITIES: usize = 100_000;
const MAX_NAME_BYTES: usize = 128;
const MAX_DOCUMENT_BYTES: usize = 20 * 1024;

fn kind_byte(kind: IamKind) -> Result<u8, MetadataError> {
    Ok(match kind {
        IamKind::User => b'u',
        IamKind::AccessKey => b'k',
        IamKind::Group => b'g',
        IamKind::Policy => b'p',
        IamKind::Setting => b's',
        IamKind::Unspecified => return Err(MetadataError::InvalidArgument("an IAM kind is required".into())),
    })
}

fn kind_name(kind: IamKind) -> &'static str {
    match kind {
        IamKind::User => "user",
        IamKind::AccessKey => "access key",
        IamKind::Group => "group",
        IamKind::Policy => "policy",
        IamKind::Setting => "setting",
        IamKind::Unspecified => "entity",
    }
}

pub fn key(kind: IamKind, name: &str) -> Result<Vec<u8>, MetadataError> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(kind_byte(kind)?);
    k.extend_from_slice(name.as_bytes());
    Ok(k)
}

/// The kind and name of an entity.
pub fn identify(entity: &IamEntity) -> Result<(IamKind, &str), MetadataError> {
    match &entity.entity {
        Some(Entity::User(u)) => Ok((IamKind::User, &u.name)),
        Some(Entity::Key(k)) => Ok((IamKind::AccessKey, &k.access_key)),
        Some(Entity::Group(g)) => Ok((IamKind::Group, &g.name)),
        Some(Entity::Policy(p)) => Ok((IamKind::Policy, &p.name)),
        Some(Entity::Setting(s)) => Ok((IamKind::Setting, &s.name)),
        None => Err(MetadataError::InvalidArgument("an IAM entity is required".into())),
    }
}

fn validate_name(kind: IamKind, name: &str) -> Result<(), MetadataError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(MetadataError::InvalidArgument(format!(
            "{} names are 1-{MAX_NAME_BYTES} bytes without control characters",
            kind_name(kind)
        )));
    }
    Ok(())
}

pub fn generation(store: &Store) -> Result<u64, MetadataError> {
    let raw = store.db().get_pinned_cf(store.cf(Cf::Meta)?, GENERATION_KEY).map_err(MetadataError::db("reading"))?;
    match raw {
        None => Ok(0),
        Some(bytes) => {
            let array: [u8; 8] =
                bytes.as_ref().try_into().map_err(|_| MetadataError::corrupt("IAM generation", "length"))?;
            Ok(u64::from_be_bytes(array))
        }
    }
}

fn bump(store: &Store, batch: &mut WriteBatch) -> Result<u64, MetadataError> {
    let next = generation(store)?.saturating_add(1);
    batch.put_cf(store.cf(Cf::Meta)?, GENERATION_KEY, next.to_be_bytes());
    Ok(next)
}

pub fn find(store: &Store, kind: IamKind, name: &str) -> Result<Option<IamEntity>, MetadataError> {
    store.get(Cf::Iam, &key(kind, name)?)
}

/// Every record of one kind, in name order.
fn all_of(store: &Store, kind: IamKind) -> Result<Vec<IamEntity>, MetadataError> {
    let mut out = Vec::new();
    store.scan_prefix(Cf::Iam, &[kind_byte(kind)?], |key, value| {
        out.push(decode(Cf::Iam, key, value)?);
        Ok(out.len() <= MAX_ENTITIES)
    })?;
    Ok(out)
}

/// The whole IAM state and its generation.
pub fn list(store: &Store) -> Result<(Vec<IamEntity>, u64), MetadataError> {
    let mut out = Vec::new();
    store.scan_prefix(Cf::Iam, b"", |key, value| {
        if out.len() >= MAX_ENTITIES {
            return Err(MetadataError::Internal(format!("more than {MAX_ENTITIES} IAM records")));
        }
        out.push(decode(Cf::Iam, key, value)?);
        Ok(true)
    })?;
    Ok((out, generation(store)?))
}

pub fn put(store: &Store, batch: &mut WriteBatch, entity: IamEntity, create_only: bool) -> Result<u64, MetadataError> {
    let (kind, name) = identify(&entity)?;
    validate_name(kind, name)?;
    let record_key = key(kind, name)?;
    if create_only && store.get::<IamEntity>(Cf::Iam, &record_key)?.is_some() {
        return Err(MetadataError::EntityAlreadyExists(format!("{} {name}", kind_name(kind))));
    }
    match &entity.entity {
        Some(Entity::Key(k)) => {
            validate_name(IamKind::User, &k.user)?;
            if find(store, IamKind::User, &k.user)?.is_none() {
                return Err(MetadataError::NoSuchEntity(format!("user {}", k.user)));
            }
            if k.sealed_secret.is_empty() {
                return Err(MetadataError::InvalidArgument("an access key needs a sealed secret".into()));
            }
        }
        Some(Entity::Policy(p)) if p.document.is_empty() || p.document.len() > MAX_DOCUMENT_BYTES => {
            return Err(MetadataError::InvalidArgument(format!("policy documents are 1-{MAX_DOCUMENT_BYTES} bytes")));
        }
        Some(Entity::Group(g)) => {
            for member in &g.members {
                if find(store, IamKind::User, member)?.is_none() {
                    return Err(MetadataError::NoSuchEntity(format!("user {member}")));
                }
            }
        }
        _ => {}
    }
    batch.put_cf(store.cf(Cf::Iam)?, record_key, entity.encode_to_vec());
    bump(store, batch)
}

pub fn delete(store: &Store, batch: &mut WriteBatch, kind: IamKind, name: &str) -> Result<u64, MetadataError> {
    let record_key = key(kind, name)?;
    if store.get::<IamEntity>(Cf::Iam, &record_key)?.is_none() {
        return Err(MetadataError::NoSuchEntity(format!("{} {name}", kind_name(kind))));
    }
    let cf = store.cf(Cf::Iam)?;
    match kind {
        IamKind::User => {
            for entity in all_of(store, IamKind::AccessKey)? {
                if let Some(Entity::Key(k)) = &entity.entity
                    && k.user == name
                {
                    batch.delete_cf(cf, key(IamKind::AccessKey, &k.access_key)?);
                }
            }
            for entity in all_of(store, IamKind::Group)? {
                if let Some(Entity::Group(mut g)) = entity.entity
                    && g.members.iter().any(|m| m == name)
                {
                    g.members.retain(|m| m != name);
                    let updated = IamEntity { entity: Some(Entity::Group(g.clone())) };
                    batch.put_cf(cf, key(IamKind::Group, &g.name)?, updated.encode_to_vec());
                }
            }
        }
        IamKind::Policy => {
            for holder in all_of(store, IamKind::User)?.into_iter().chain(all_of(store, IamKind::Group)?) {
                let (holder_name, policies) = match &holder.entity {
                    Some(Entity::User(u)) => (&u.name, &u.policies),
                    Some(Entity::Group(g)) => (&g.name, &g.policies),
                    _ => continue,
                };
                if policies.iter().any(|p| p == name) {
                    return Err(MetadataError::DeleteConflict(format!(
                        "policy {name} is attached to {holder_name}; detach it first"
                    )));
                }
            }
        }
        _ => {}
    }
    batch.delete_cf(cf, record_key);
    bump(store, batch)
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::{IamAccessKey, IamGroup, IamPolicy, IamUser};

    use super::*;

    fn apply(
        store: &Store,
        f: impl FnOnce(&mut WriteBatch) -> Result<u64, MetadataError>,
    ) -> Result<u64, MetadataError> {
        let mut batch = WriteBatch::default();
        let generation = f(&mut batch)?;
        store.write(batch)?;
        Ok(generation)
    }

    fn user(name: &str, policies: &[&str]) -> IamEntity {
        let policies = policies.iter().map(|p| p.to_string()).collect();
        IamEntity { entity: Some(Entity::User(IamUser { name: name.into(), policies, ..Default::default() })) }
    }

    fn access_key(id: &str, user: &str) -> IamEntity {
        let k = IamAccessKey { access_key: id.into(), user: user.into(), sealed_secret: vec![1], ..Default::default() };
        IamEntity { entity: Some(Entity::Key(k)) }
    }

    #[test]
    fn references_stay_sound_and_every_change_bumps_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(generation(&store).unwrap(), 0);
        assert!(matches!(
            apply(&store, |b| put(&store, b, access_key("AK1", "alice"), true)),
            Err(MetadataError::NoSuchEntity(_))
        ));
        assert_eq!(apply(&store, |b| put(&store, b, user("alice", &["team"]), true)).unwrap(), 1);
        assert!(matches!(
            apply(&store, |b| put(&store, b, user("alice", &[]), true)),
            Err(MetadataError::EntityAlreadyExists(_))
        ));
        let policy = IamPolicy { name: "team".into(), document: "{}".into(), ..Default::default() };
        apply(&store, |b| put(&store, b, IamEntity { entity: Some(Entity::Policy(policy)) }, true)).unwrap();
        apply(&store, |b| put(&store, b, access_key("AK1", "alice"), true)).unwrap();
        let group = IamGroup { name: "devs".into(), members: vec!["alice".into()], ..Default::default() };
        apply(&store, |b| put(&store, b, IamEntity { entity: Some(Entity::Group(group)) }, false)).unwrap();
        assert!(matches!(
            apply(&store, |b| delete(&store, b, IamKind::Policy, "team")),
            Err(MetadataError::DeleteConflict(_))
        ));

        let generation = apply(&store, |b| delete(&store, b, IamKind::User, "alice")).unwrap();
        assert_eq!(generation, 5, "user, policy, key, group, delete");
        let (entities, listed_generation) = list(&store).unwrap();
        assert_eq!(listed_generation, 5);
        assert!(find(&store, IamKind::AccessKey, "AK1").unwrap().is_none(), "the user's keys go with it");
        let Some(Entity::Group(devs)) = find(&store, IamKind::Group, "devs").unwrap().and_then(|e| e.entity) else {
            panic!("group devs is gone");
        };
        assert!(devs.members.is_empty());
        assert_eq!(entities.len(), 2, "the policy and the group remain");
        apply(&store, |b| delete(&store, b, IamKind::Policy, "team")).unwrap();
        assert!(matches!(
            apply(&store, |b| delete(&store, b, IamKind::Policy, "team")),
            Err(MetadataError::NoSuchEntity(_))
        ));
    }
}
