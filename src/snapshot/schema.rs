//! The schema as canonical one-line descriptors read from the catalogs.
//!
//! Every name is deparsed with an empty search_path (so always schema-qualified), no OID or
//! storage detail appears, and ACLs are the effective ones (NULL is replaced by the built-in
//! default), so a faithful restore yields exactly the same lines. Objects that belong to an
//! extension are left out: CREATE EXTENSION makes them, not the dump.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::{SchemaSnapshot, SnapshotError, USER_SCHEMA};

/// `NOT EXISTS` clause excluding objects that are members of an extension.
fn not_extension_member(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend xdep WHERE xdep.classid = '{catalog}'::regclass \
         AND xdep.objid = {oid} AND xdep.deptype = 'e')"
    )
}

/// (what it reads, query returning one descriptor per row in column 0).
fn descriptor_queries() -> Vec<(&'static str, String)> {
    let rel_not_ext = not_extension_member("pg_class", "c.oid");
    let mut q = Vec::new();

    q.push((
        "schemas",
        format!(
            "SELECT format('schema %I owner=%I', n.nspname, pg_get_userbyid(n.nspowner))
             FROM pg_namespace n
             WHERE {USER_SCHEMA} AND {ns_not_ext}
             UNION ALL
             SELECT format('acl schema %I: %s', n.nspname, a.item)
             FROM pg_namespace n
             CROSS JOIN LATERAL unnest(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS a(item)
             WHERE {USER_SCHEMA} AND {ns_not_ext}",
            ns_not_ext = not_extension_member("pg_namespace", "n.oid"),
        ),
    ));

    q.push((
        "relations",
        format!(
            "SELECT format('relation %s kind=%s owner=%I persistence=%s rls=%s force_rls=%s options=%s inherits=%s partition_key=%s partition_bound=%s replica_identity=%s',
                c.oid::regclass, c.relkind, pg_get_userbyid(c.relowner), c.relpersistence,
                c.relrowsecurity, c.relforcerowsecurity,
                array_to_string(ARRAY(SELECT o FROM unnest(c.reloptions) AS o ORDER BY o COLLATE \"C\"), ','),
                coalesce((SELECT string_agg(i.inhparent::regclass::text, ',' ORDER BY i.inhseqno)
                          FROM pg_inherits i WHERE i.inhrelid = c.oid), ''),
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) ELSE '' END,
                coalesce(pg_get_expr(c.relpartbound, c.oid), ''),
                c.relreplident)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_SCHEMA} AND {rel_not_ext}
             UNION ALL
             SELECT format('definition %s: %s', c.oid::regclass, pg_get_viewdef(c.oid))
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA} AND {rel_not_ext}
             UNION ALL
             SELECT format('acl %s %s: %s', CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'relation' END,
                           c.oid::regclass, a.item)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL unnest(coalesce(c.relacl,
                 acldefault(CASE WHEN c.relkind = 'S' THEN 's'::\"char\" ELSE 'r'::\"char\" END, c.relowner))) AS a(item)
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {USER_SCHEMA} AND {rel_not_ext}"
        ),
    ));

    // Columns are described by name; their order is a descriptor of its own, so that a child
    // whose columns pg_dump laid out in another order differs in that one line, which the
    // classifier can recognise, and not in every column.
    q.push((
        "columns",
        format!(
            "SELECT format('column %s %I type=%s not_null=%s default=%s identity=%s generated=%s collation=%s',
                c.oid::regclass, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull,
                coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity, a.attgenerated,
                CASE WHEN a.attcollation <> t.typcollation THEN
                    (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                     JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
                ELSE '' END)
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
               AND {USER_SCHEMA} AND {rel_not_ext} AND {type_not_ext}
             UNION ALL
             SELECT format('column_order %s inherits=%s: %s', c.oid::regclass,
                CASE WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) THEN 'true' ELSE 'false' END,
                string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum))
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
               AND {USER_SCHEMA} AND {rel_not_ext} AND {type_not_ext}
             GROUP BY c.oid
             UNION ALL
             SELECT format('acl column %s.%I: %s', c.oid::regclass, a.attname, x.item)
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL unnest(a.attacl) AS x(item)
             WHERE a.attnum > 0 AND NOT a.attisdropped AND {USER_SCHEMA} AND {rel_not_ext}",
            type_not_ext = not_extension_member("pg_type", "c.reltype"),
        ),
    ));

    q.push((
        "constraints",
        format!(
            // clone=: the copy a partition holds of its parent's key, whose name pg_dump
            // does not keep (see classify).
            "SELECT format('constraint %s %I type=%s clone=%s: %s',
                CASE WHEN c.conrelid <> 0 THEN c.conrelid::regclass::text
                     ELSE 'domain ' || format_type(c.contypid, NULL) END,
                c.conname, c.contype, CASE WHEN c.conparentid <> 0 THEN 'true' ELSE 'false' END,
                pg_get_constraintdef(c.oid))
             FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE {USER_SCHEMA} AND {con_not_ext} AND {conrel_not_ext} AND {contype_not_ext}",
            con_not_ext = not_extension_member("pg_constraint", "c.oid"),
            conrel_not_ext = not_extension_member("pg_class", "c.conrelid"),
            contype_not_ext = not_extension_member("pg_type", "c.contypid"),
        ),
    ));

    // pg_dump leaves out invalid indexes (a failed CREATE INDEX CONCURRENTLY) except on
    // partitioned tables; so does this, or every such source would fail its drill.
    q.push((
        "indexes",
        format!(
            "SELECT format('index %s on %s clustered=%s replica_identity=%s: %s',
                i.indexrelid::regclass, i.indrelid::regclass, i.indisclustered, i.indisreplident,
                pg_get_indexdef(i.indexrelid))
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = ic.relnamespace
             WHERE (i.indisvalid OR c.relkind = 'p') AND {USER_SCHEMA} AND {rel_not_ext}"
        ),
    ));

    // Only where a relation is not in the database's default tablespace, so a database that
    // uses none has no such line. One line of its own, so that an object pg_restore
    // --no-tablespaces put in the default tablespace differs in that line only (see classify).
    q.push((
        "tablespaces",
        format!(
            "SELECT format('tablespace %s %s: %I',
                CASE WHEN c.relkind IN ('i', 'I') THEN 'index' ELSE 'relation' END,
                c.oid::regclass, t.spcname)
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_tablespace t ON t.oid = c.reltablespace
             WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I') AND {USER_SCHEMA} AND {rel_not_ext}
               AND (c.relkind NOT IN ('i', 'I') OR EXISTS (SELECT 1 FROM pg_index i
                    JOIN pg_class tc ON tc.oid = i.indrelid
                    WHERE i.indexrelid = c.oid AND (i.indisvalid OR tc.relkind = 'p')))"
        ),
    ));

    q.push((
        "triggers, rules, policies and statistics",
        format!(
            "SELECT format('trigger %s %I enabled=%s: %s', t.tgrelid::regclass, t.tgname, t.tgenabled,
                           pg_get_triggerdef(t.oid))
             FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT t.tgisinternal AND {USER_SCHEMA} AND {rel_not_ext}
             UNION ALL
             SELECT format('rule %s %I enabled=%s: %s', r.ev_class::regclass, r.rulename, r.ev_enabled,
                           pg_get_ruledef(r.oid))
             FROM pg_rewrite r
             JOIN pg_class c ON c.oid = r.ev_class
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE r.rulename <> '_RETURN' AND {USER_SCHEMA} AND {rel_not_ext}
             UNION ALL
             SELECT format('policy %s %I command=%s permissive=%s roles=%s using=%s with_check=%s',
                 p.polrelid::regclass, p.polname, p.polcmd, p.polpermissive,
                 array_to_string(ARRAY(
                     SELECT x FROM (SELECT CASE WHEN r = 0 THEN 'public' ELSE quote_ident(pg_get_userbyid(r)) END AS x
                                    FROM unnest(p.polroles) AS r) AS roles
                     ORDER BY x COLLATE \"C\"), ','),
                 coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
                 coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''))
             FROM pg_policy p
             JOIN pg_class c ON c.oid = p.polrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE {USER_SCHEMA} AND {rel_not_ext}
             UNION ALL
             SELECT format('statistics %s', pg_get_statisticsobjdef(s.oid))
             FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
             WHERE {USER_SCHEMA} AND {stx_not_ext}",
            stx_not_ext = not_extension_member("pg_statistic_ext", "s.oid"),
        ),
    ));

    // Array types follow their element type, and table row types their table, so only
    // free-standing types are listed.
    let type_filter = format!(
        "{USER_SCHEMA} AND {not_ext}
         AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
         AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid)",
        not_ext = not_extension_member("pg_type", "t.oid"),
    );
    q.push((
        "types",
        format!(
            "SELECT format('type %s kind=%s owner=%I%s', t.oid::regtype, t.typtype, pg_get_userbyid(t.typowner),
                CASE t.typtype
                  WHEN 'e' THEN ' labels=' || ARRAY(SELECT e.enumlabel FROM pg_enum e
                                                     WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)::text
                  WHEN 'd' THEN format(' base=%s not_null=%s default=%s', format_type(t.typbasetype, t.typtypmod),
                                       t.typnotnull, coalesce(t.typdefault, ''))
                  WHEN 'r' THEN (SELECT format(' subtype=%s', format_type(r.rngsubtype, NULL))
                                 FROM pg_range r WHERE r.rngtypid = t.oid)
                  ELSE '' END)
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE {type_filter}
             UNION ALL
             SELECT format('acl type %s: %s', t.oid::regtype, a.item)
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             CROSS JOIN LATERAL unnest(coalesce(t.typacl, acldefault('T', t.typowner))) AS a(item)
             WHERE {type_filter}"
        ),
    ));

    // Extension owners are whoever ran CREATE EXTENSION (the restoring role), so not compared.
    q.push((
        "extensions",
        "SELECT format('extension %I version=%s schema=%I', e.extname, e.extversion, n.nspname)
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            .to_string(),
    ));

    q.push((
        "sequences",
        format!(
            "SELECT format('sequence %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owner=%I owned_by=%s',
                c.oid::regclass, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
                s.seqmax, s.seqcache, s.seqcycle, pg_get_userbyid(c.relowner),
                coalesce((SELECT format('%s.%I', d.refobjid::regclass, a.attname)
                          FROM pg_depend d
                          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
                            AND d.deptype IN ('a', 'i')), ''))
             FROM pg_sequence s
             JOIN pg_class c ON c.oid = s.seqrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE {USER_SCHEMA} AND {rel_not_ext}"
        ),
    ));

    q.push((
        "default privileges and event triggers",
        format!(
            "SELECT format('default_acl role=%I schema=%s type=%s: %s', pg_get_userbyid(d.defaclrole),
                           coalesce(quote_ident(n.nspname), '*'), d.defaclobjtype, a.item)
             FROM pg_default_acl d
             LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
             CROSS JOIN LATERAL unnest(d.defaclacl) AS a(item)
             UNION ALL
             SELECT format('event_trigger %I event=%s enabled=%s owner=%I function=%s tags=%s',
                 e.evtname, e.evtevent, e.evtenabled, pg_get_userbyid(e.evtowner), e.evtfoid::regprocedure,
                 array_to_string(ARRAY(SELECT x FROM unnest(e.evttags) AS x ORDER BY x COLLATE \"C\"), ','))
             FROM pg_event_trigger e
             WHERE {evt_not_ext}",
            evt_not_ext = not_extension_member("pg_event_trigger", "e.oid"),
        ),
    ));

    // pg_dump keeps large objects' OIDs, owners and grants; their content is a check.
    q.push((
        "large objects",
        "SELECT format('large_object %s owner=%I', m.oid, pg_get_userbyid(m.lomowner))
         FROM pg_largeobject_metadata m
         UNION ALL
         SELECT format('acl large_object %s: %s', m.oid, a.item)
         FROM pg_largeobject_metadata m
         CROSS JOIN LATERAL unnest(coalesce(m.lomacl, acldefault('L', m.lomowner))) AS a(item)"
            .to_string(),
    ));

    // The database's own properties. pg_dump keeps them, but pg_restore applies them only with
    // --create, so a restore by createdb + pg_restore -d (the strategy's) leaves them behind:
    // classify names what was left. Grants only where they differ from the default, so that a
    // createdb'd database has no acl line; grantees by role, the owner as `owner`.
    q.push((
        "database properties",
        "WITH d AS (SELECT oid, datdba, datacl, datconnlimit FROM pg_database
                    WHERE datname = current_database()),
              acl AS (
                SELECT v.which, format('database acl: %s=%s',
                         CASE e.grantee WHEN 0 THEN 'public' WHEN d.datdba THEN 'owner'
                              ELSE quote_ident(pg_get_userbyid(e.grantee)) END,
                         string_agg(e.privilege_type || CASE WHEN e.is_grantable THEN '*' ELSE '' END,
                                    ',' ORDER BY e.privilege_type)) AS line
                FROM d
                CROSS JOIN LATERAL (VALUES ('actual', coalesce(d.datacl, acldefault('d', d.datdba))),
                                           ('default', acldefault('d', d.datdba))) AS v(which, items)
                CROSS JOIN LATERAL aclexplode(v.items) AS e
                GROUP BY v.which, e.grantee, d.datdba)
         SELECT format('database owner=%I', pg_get_userbyid(d.datdba)) FROM d
         UNION ALL
         SELECT CASE WHEN r.setrole = 0 THEN format('database setting: %s', c.item)
                     ELSE format('database setting for role %I: %s', pg_get_userbyid(r.setrole), c.item) END
         FROM d JOIN pg_db_role_setting r ON r.setdatabase = d.oid
         CROSS JOIN LATERAL unnest(r.setconfig) AS c(item)
         UNION ALL
         SELECT format('database comment: %s', shobj_description(d.oid, 'pg_database'))
         FROM d WHERE shobj_description(d.oid, 'pg_database') IS NOT NULL
         UNION ALL
         SELECT format('database connection_limit=%s', d.datconnlimit) FROM d WHERE d.datconnlimit <> -1
         UNION ALL
         SELECT 'database acl: none' FROM d WHERE d.datacl = '{}'
         UNION ALL
         SELECT a.line FROM acl a
         WHERE a.which = 'actual'
           AND (SELECT array_agg(line ORDER BY line) FROM acl WHERE which = 'actual')
               IS DISTINCT FROM (SELECT array_agg(line ORDER BY line) FROM acl WHERE which = 'default')"
            .to_string(),
    ));

    q.extend(other_object_queries());

    q.push((
        "comments",
        "SELECT format('comment %s %s: %s', o.type, o.identity, d.description)
         FROM pg_description d
         CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) AS o
         WHERE d.classoid IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass,
                              'pg_constraint'::regclass, 'pg_trigger'::regclass, 'pg_policy'::regclass,
                              'pg_rewrite'::regclass, 'pg_namespace'::regclass)
           AND coalesce(o.schema, o.identity) <> 'information_schema'
           AND coalesce(o.schema, o.identity) !~ '^pg_'
           AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid
                           AND e.objid = d.objoid AND e.deptype = 'e')"
            .to_string(),
    ));

    q
}

/// The objects besides relations, types and functions that pg_dump restores: operators and
/// their classes and families, casts, collations, text search objects, foreign-data wrappers,
/// servers and user mappings, publications, access methods, languages, transforms and
/// conversions, with the comments on them. Without these lines a restore that lost one of
/// them would pass. Objects made by the system (OID below 16384) or by an extension are left
/// out, as pg_dump leaves them out.
///
/// A shell operator (no function: left behind when the operator that named it as commutator
/// or negator was dropped) is not dumped by pg_dump, so it is not described either.
fn other_object_queries() -> Vec<(&'static str, String)> {
    let ne = not_extension_member;
    let user_oid = |oid: &str| format!("{oid} >= 16384");
    vec![
        (
            "operators",
            format!(
                "SELECT format('operator %s owner=%I kind=%s result=%s function=%s commutator=%s negator=%s restrict=%s join=%s hashes=%s merges=%s',
                    o.oid::regoperator, pg_get_userbyid(o.oprowner), o.oprkind, format_type(o.oprresult, NULL),
                    o.oprcode::regprocedure, o.oprcom::regoperator, o.oprnegate::regoperator,
                    o.oprrest::regprocedure, o.oprjoin::regprocedure, o.oprcanhash, o.oprcanmerge)
                 FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
                 WHERE o.oprcode <> 0 AND {USER_SCHEMA} AND {}",
                ne("pg_operator", "o.oid")
            ),
        ),
        (
            "operator families and classes",
            format!(
                "SELECT format('operator_family %I.%I using %I owner=%I', n.nspname, f.opfname, a.amname,
                               pg_get_userbyid(f.opfowner))
                 FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am a ON a.oid = f.opfmethod
                 WHERE {USER_SCHEMA} AND {fam}
                 UNION ALL
                 SELECT format('operator_family %I.%I using %I operator %s strategy=%s purpose=%s',
                               n.nspname, f.opfname, a.amname, o.amopopr::regoperator, o.amopstrategy, o.amoppurpose)
                 FROM pg_amop o JOIN pg_opfamily f ON f.oid = o.amopfamily
                 JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am a ON a.oid = f.opfmethod
                 WHERE {USER_SCHEMA} AND {fam}
                 UNION ALL
                 SELECT format('operator_family %I.%I using %I function %s number=%s types=%s,%s',
                               n.nspname, f.opfname, a.amname, p.amproc::regprocedure, p.amprocnum,
                               format_type(p.amproclefttype, NULL), format_type(p.amprocrighttype, NULL))
                 FROM pg_amproc p JOIN pg_opfamily f ON f.oid = p.amprocfamily
                 JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am a ON a.oid = f.opfmethod
                 WHERE {USER_SCHEMA} AND {fam}
                 UNION ALL
                 SELECT format('operator_class %I.%I using %I for %s family=%I.%I default=%s storage=%s owner=%I',
                               n.nspname, c.opcname, a.amname, format_type(c.opcintype, NULL), fn.nspname, f.opfname,
                               c.opcdefault, format_type(c.opckeytype, NULL), pg_get_userbyid(c.opcowner))
                 FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace JOIN pg_am a ON a.oid = c.opcmethod
                 JOIN pg_opfamily f ON f.oid = c.opcfamily JOIN pg_namespace fn ON fn.oid = f.opfnamespace
                 WHERE {USER_SCHEMA} AND {cls}",
                fam = ne("pg_opfamily", "f.oid"),
                cls = ne("pg_opclass", "c.oid"),
            ),
        ),
        (
            "casts, access methods, languages, transforms",
            format!(
                "SELECT format('cast (%s AS %s) function=%s context=%s method=%s', format_type(c.castsource, NULL),
                               format_type(c.casttarget, NULL), c.castfunc::regprocedure, c.castcontext, c.castmethod)
                 FROM pg_cast c WHERE {cast_user} AND {cast_ne}
                 UNION ALL
                 SELECT format('access_method %I type=%s handler=%s', a.amname, a.amtype, a.amhandler::regproc)
                 FROM pg_am a WHERE {am_user} AND {am_ne}
                 UNION ALL
                 SELECT format('language %I owner=%I trusted=%s handler=%s inline=%s validator=%s', l.lanname,
                               pg_get_userbyid(l.lanowner), l.lanpltrusted, l.lanplcallfoid::regprocedure,
                               l.laninline::regprocedure, l.lanvalidator::regprocedure)
                 FROM pg_language l WHERE {lan_user} AND {lan_ne}
                 UNION ALL
                 SELECT format('transform for %s language %I from_sql=%s to_sql=%s', format_type(t.trftype, NULL),
                               l.lanname, t.trffromsql::regprocedure, t.trftosql::regprocedure)
                 FROM pg_transform t JOIN pg_language l ON l.oid = t.trflang WHERE {trf_user} AND {trf_ne}
                 UNION ALL
                 SELECT format('conversion %I.%I owner=%I from=%s to=%s function=%s default=%s', n.nspname, c.conname,
                               pg_get_userbyid(c.conowner), pg_encoding_to_char(c.conforencoding),
                               pg_encoding_to_char(c.contoencoding), c.conproc::regprocedure, c.condefault)
                 FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
                 WHERE {USER_SCHEMA} AND {conv_ne}",
                cast_user = user_oid("c.oid"),
                cast_ne = ne("pg_cast", "c.oid"),
                am_user = user_oid("a.oid"),
                am_ne = ne("pg_am", "a.oid"),
                lan_user = user_oid("l.oid"),
                lan_ne = ne("pg_language", "l.oid"),
                trf_user = user_oid("t.oid"),
                trf_ne = ne("pg_transform", "t.oid"),
                conv_ne = ne("pg_conversion", "c.oid"),
            ),
        ),
        (
            "collations",
            format!(
                "SELECT format('collation %s owner=%I provider=%s deterministic=%s collate=%s ctype=%s icu_locale=%s',
                               c.oid::regcollation, pg_get_userbyid(c.collowner), c.collprovider,
                               c.collisdeterministic, c.collcollate, c.collctype, c.colliculocale)
                 FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
                 WHERE {USER_SCHEMA} AND {}",
                ne("pg_collation", "c.oid")
            ),
        ),
        (
            "text search objects",
            format!(
                "SELECT format('text_search_configuration %s owner=%I parser=%I.%I', c.oid::regconfig,
                               pg_get_userbyid(c.cfgowner), pn.nspname, p.prsname)
                 FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
                 JOIN pg_ts_parser p ON p.oid = c.cfgparser JOIN pg_namespace pn ON pn.oid = p.prsnamespace
                 WHERE {USER_SCHEMA} AND {cfg_ne}
                 UNION ALL
                 SELECT format('text_search_configuration %s token=%s order=%s dictionary=%s', c.oid::regconfig,
                               m.maptokentype, m.mapseqno, m.mapdict::regdictionary)
                 FROM pg_ts_config_map m JOIN pg_ts_config c ON c.oid = m.mapcfg
                 JOIN pg_namespace n ON n.oid = c.cfgnamespace
                 WHERE {USER_SCHEMA} AND {cfg_ne}
                 UNION ALL
                 SELECT format('text_search_dictionary %s owner=%I template=%I.%I options=%s', d.oid::regdictionary,
                               pg_get_userbyid(d.dictowner), tn.nspname, t.tmplname, coalesce(d.dictinitoption, ''))
                 FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
                 JOIN pg_ts_template t ON t.oid = d.dicttemplate JOIN pg_namespace tn ON tn.oid = t.tmplnamespace
                 WHERE {USER_SCHEMA} AND {dict_ne}
                 UNION ALL
                 SELECT format('text_search_template %I.%I init=%s lexize=%s', n.nspname, t.tmplname,
                               t.tmplinit::regproc, t.tmpllexize::regproc)
                 FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace
                 WHERE {USER_SCHEMA} AND {tmpl_ne}
                 UNION ALL
                 SELECT format('text_search_parser %I.%I start=%s token=%s end=%s headline=%s types=%s', n.nspname,
                               p.prsname, p.prsstart::regproc, p.prstoken::regproc, p.prsend::regproc,
                               p.prsheadline::regproc, p.prslextype::regproc)
                 FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace
                 WHERE {USER_SCHEMA} AND {prs_ne}",
                cfg_ne = ne("pg_ts_config", "c.oid"),
                dict_ne = ne("pg_ts_dict", "d.oid"),
                tmpl_ne = ne("pg_ts_template", "t.oid"),
                prs_ne = ne("pg_ts_parser", "p.oid"),
            ),
        ),
        // User mappings often hold a password in their options: only the option names.
        (
            "foreign-data wrappers, servers and user mappings",
            format!(
                "SELECT format('foreign_data_wrapper %I owner=%I handler=%s validator=%s options=%s', w.fdwname,
                               pg_get_userbyid(w.fdwowner), w.fdwhandler::regproc, w.fdwvalidator::regproc,
                               array_to_string(ARRAY(SELECT o FROM unnest(w.fdwoptions) o ORDER BY o COLLATE \"C\"), ','))
                 FROM pg_foreign_data_wrapper w WHERE {fdw_ne}
                 UNION ALL
                 SELECT format('acl foreign_data_wrapper %I: %s', w.fdwname, a.item)
                 FROM pg_foreign_data_wrapper w
                 CROSS JOIN LATERAL unnest(coalesce(w.fdwacl, acldefault('F', w.fdwowner))) AS a(item)
                 WHERE {fdw_ne}
                 UNION ALL
                 SELECT format('foreign_server %I wrapper=%I owner=%I type=%s version=%s options=%s', s.srvname,
                               w.fdwname, pg_get_userbyid(s.srvowner), coalesce(s.srvtype, ''), coalesce(s.srvversion, ''),
                               array_to_string(ARRAY(SELECT o FROM unnest(s.srvoptions) o ORDER BY o COLLATE \"C\"), ','))
                 FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE {srv_ne}
                 UNION ALL
                 SELECT format('acl foreign_server %I: %s', s.srvname, a.item)
                 FROM pg_foreign_server s
                 CROSS JOIN LATERAL unnest(coalesce(s.srvacl, acldefault('S', s.srvowner))) AS a(item)
                 WHERE {srv_ne}
                 UNION ALL
                 SELECT format('user_mapping for %s server %I option_names=%s',
                               CASE WHEN u.umuser = 0 THEN 'public' ELSE quote_ident(pg_get_userbyid(u.umuser)) END,
                               s.srvname,
                               array_to_string(ARRAY(SELECT split_part(o, '=', 1) FROM unnest(u.umoptions) o
                                                     ORDER BY split_part(o, '=', 1) COLLATE \"C\"), ','))
                 FROM pg_user_mapping u JOIN pg_foreign_server s ON s.oid = u.umserver WHERE {srv_ne}
                 UNION ALL
                 SELECT format('foreign_table %s server=%I options=%s', t.ftrelid::regclass, s.srvname,
                               array_to_string(ARRAY(SELECT o FROM unnest(t.ftoptions) o ORDER BY o COLLATE \"C\"), ','))
                 FROM pg_foreign_table t JOIN pg_foreign_server s ON s.oid = t.ftserver
                 JOIN pg_class c ON c.oid = t.ftrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE {USER_SCHEMA} AND {ft_ne}",
                fdw_ne = ne("pg_foreign_data_wrapper", "w.oid"),
                srv_ne = ne("pg_foreign_server", "s.oid"),
                ft_ne = ne("pg_class", "t.ftrelid"),
            ),
        ),
        (
            "publications",
            "SELECT format('publication %I owner=%I all_tables=%s insert=%s update=%s delete=%s truncate=%s via_root=%s',
                           p.pubname, pg_get_userbyid(p.pubowner), p.puballtables, p.pubinsert, p.pubupdate,
                           p.pubdelete, p.pubtruncate, p.pubviaroot)
             FROM pg_publication p
             UNION ALL
             SELECT format('publication %I table %s where=%s columns=%s', p.pubname, r.prrelid::regclass,
                           coalesce(pg_get_expr(r.prqual, r.prrelid), ''),
                           coalesce((SELECT string_agg(quote_ident(a.attname), ',' ORDER BY a.attname::text COLLATE \"C\")
                                     FROM pg_attribute a WHERE a.attrelid = r.prrelid AND a.attnum = ANY (r.prattrs)), ''))
             FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
             UNION ALL
             SELECT format('publication %I schema %I', p.pubname, n.nspname)
             FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid
             JOIN pg_namespace n ON n.oid = pn.pnnspid"
                .to_string(),
        ),
        (
            "comments on other objects",
            "SELECT format('comment %s %s: %s', o.type, o.identity, d.description)
             FROM pg_description d
             CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) AS o
             WHERE d.objoid >= 16384
               AND d.classoid IN ('pg_operator'::regclass, 'pg_opclass'::regclass, 'pg_opfamily'::regclass,
                                  'pg_cast'::regclass, 'pg_collation'::regclass, 'pg_ts_config'::regclass,
                                  'pg_ts_dict'::regclass, 'pg_ts_parser'::regclass, 'pg_ts_template'::regclass,
                                  'pg_foreign_data_wrapper'::regclass, 'pg_foreign_server'::regclass,
                                  'pg_publication'::regclass, 'pg_am'::regclass, 'pg_language'::regclass,
                                  'pg_transform'::regclass, 'pg_conversion'::regclass, 'pg_event_trigger'::regclass,
                                  'pg_statistic_ext'::regclass, 'pg_largeobject'::regclass)
               AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid
                               AND e.objid = d.objoid AND e.deptype = 'e')"
                .to_string(),
        ),
    ]
}

/// Functions are described by a hash of their full definition: their bodies are long, and
/// the diff only needs to say which function changed.
async fn function_descriptors(client: &Client) -> Result<Vec<String>, SnapshotError> {
    let filter = format!(
        "{USER_SCHEMA} AND {}",
        not_extension_member("pg_proc", "p.oid")
    );
    let sql = format!(
        "SELECT p.oid::regprocedure::text, p.prokind::text, pg_get_userbyid(p.proowner),
            CASE WHEN p.prokind = 'a' THEN
                (SELECT format('aggregate kind=%s transition=%s state=%s final=%s combine=%s initial=%s sort_operator=%s',
                               g.aggkind, g.aggtransfn::regprocedure, format_type(g.aggtranstype, NULL),
                               g.aggfinalfn::regprocedure, g.aggcombinefn::regprocedure,
                               coalesce(g.agginitval, ''), g.aggsortop::regoperator)
                 FROM pg_aggregate g WHERE g.aggfnoid = p.oid)
            ELSE pg_get_functiondef(p.oid) END
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE {filter}"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(SnapshotError::query("reading functions"))?;
    let mut out = Vec::with_capacity(rows.len() * 3);
    for row in rows {
        let signature: String = row.get(0);
        let kind: String = row.get(1);
        let owner: String = row.get(2);
        let definition: Option<String> = row.get(3);
        let digest = Sha256::digest(definition.unwrap_or_default().as_bytes());
        out.push(format!(
            "function {signature} kind={kind} owner={owner} definition_sha256={}",
            &hex::encode(digest)[..16]
        ));
    }
    let acl_sql = format!(
        "SELECT format('acl function %s: %s', p.oid::regprocedure, a.item)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         CROSS JOIN LATERAL unnest(coalesce(p.proacl, acldefault('f', p.proowner))) AS a(item)
         WHERE {filter}"
    );
    let rows = client
        .query(&acl_sql, &[])
        .await
        .map_err(SnapshotError::query("reading function grants"))?;
    out.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    Ok(out)
}

/// Reads the schema descriptors; needs the session settings of `take` (empty search_path).
pub(super) async fn take(client: &Client) -> Result<SchemaSnapshot, SnapshotError> {
    let mut objects = Vec::new();
    for (what, sql) in descriptor_queries() {
        let rows = client
            .query(&sql, &[])
            .await
            .map_err(SnapshotError::query(format!("reading {what}")))?;
        objects.extend(rows.iter().map(|r| one_line(r.get::<_, String>(0))));
    }
    objects.extend(
        function_descriptors(client)
            .await?
            .into_iter()
            .map(one_line),
    );
    // Byte order, not the server's collation: the list must sort the same everywhere.
    objects.sort();
    let fingerprint = fingerprint(&objects);
    Ok(SchemaSnapshot {
        fingerprint,
        objects,
    })
}

/// sha256 hex of the descriptors joined by newlines.
pub(super) fn fingerprint(objects: &[String]) -> String {
    let mut hasher = Sha256::new();
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(object.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Escapes backslashes and line breaks so a multi-line definition stays one descriptor line.
fn one_line(s: String) -> String {
    if !s.contains(['\\', '\n', '\r']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_line_breaks_reversibly() {
        assert_eq!(one_line("a\nb\\n".into()), "a\\nb\\\\n");
        assert_eq!(one_line("plain".into()), "plain");
    }

    #[test]
    fn fingerprint_depends_on_every_line_and_boundary() {
        let a = fingerprint(&["x".into(), "y".into()]);
        assert_ne!(a, fingerprint(&["xy".into()]));
        assert_ne!(a, fingerprint(&["x".into(), "z".into()]));
        assert_eq!(a.len(), 64);
    }
}
